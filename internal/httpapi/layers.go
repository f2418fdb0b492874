package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"debate/internal/catalog"
	"debate/internal/resolve"
)

type layersBody struct {
	Count  int             `json:"count"`
	Layers []catalog.Layer `json:"layers"`
}

// handleLayers searches the layer catalog: ?q=text&kind=platform&tag=wayland (tags may
// repeat or be comma-separated; every criterion must hold).
func (s *Server) handleLayers(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var tags []string
	for _, t := range q["tag"] {
		for _, part := range strings.Split(t, ",") {
			if part = strings.TrimSpace(part); part != "" {
				tags = append(tags, part)
			}
		}
	}
	layers, err := s.judge.Catalog.Search(catalog.Query{Text: q.Get("q"), Kind: q.Get("kind"), Tags: tags})
	if errors.Is(err, catalog.ErrBadQuery) {
		field := "q"
		switch {
		case strings.Contains(err.Error(), "kind"):
			field = "kind"
		case strings.Contains(err.Error(), "tag"):
			field = "tag"
		}
		return &FieldError{Field: field, Reason: err.Error()}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, layersBody{Count: len(layers), Layers: layers})
	return nil
}

// handleLayer answers one layer by id.
func (s *Server) handleLayer(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	l, ok := s.judge.Catalog.Layer(id)
	if !ok {
		return fmt.Errorf("%w: no layer %q in the catalog; GET /api/v1/layers lists them", ErrNotFound, id)
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, l)
	return nil
}

// handleCheckRecipe judges a recipe without building it: "sustained", or the objections
// with their resolutions. The body is the recipe (JSON or YAML, as for POST /builds);
// ?last=OP:NAME names the client's last change, so that objections it caused offer to
// withdraw it. An invalid recipe is 422 with every problem, like a build submission.
func (s *Server) handleCheckRecipe(w http.ResponseWriter, r *http.Request) error {
	var last *resolve.Change
	if v := r.URL.Query().Get("last"); v != "" {
		ch, err := resolve.ParseChange(v)
		if err != nil {
			return &FieldError{Field: "last", Reason: err.Error()}
		}
		last = &ch
	}
	rec, err := readRecipe(r)
	if err != nil {
		return err
	}
	rep, err := s.judge.Check(r.Context(), rec, last)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
