package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestCheckObjectionsOffline(t *testing.T) {
	file := writeTemp(t, "clash.yaml", "apiVersion: debate/v1\nname: clash\nbase: {distribution: debian, release: bookworm}\nlayers: [gnome, xfce]\n")
	var out, errb bytes.Buffer
	code := checkMain([]string{"--offline", "--last-change", "add-layer:xfce", file}, strings.NewReader(""), &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "objection 1 [layer_conflict]: GNOME and Xfce both provide a display manager") ||
		!strings.Contains(out.String(), "withdraw: undo the last change (adding layer xfce)") || !strings.Contains(errb.String(), "overruled") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr: %s", code, out.String(), errb.String())
	}
	out.Reset()
	code = checkMain([]string{"--offline", "--json", file}, strings.NewReader(""), &out, &errb)
	var res checkResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || code != 1 || !res.Valid || res.Sustained || len(res.Objections) != 1 || res.PackagesChecked || !strings.Contains(res.Note, "--offline") {
		t.Fatalf("exit %d, %v: %s", code, err, out.String())
	}
	for _, bad := range []string{"explode:x", "add-layer", "add-package:Vim"} {
		errb.Reset()
		if code := checkMain([]string{"--offline", "--last-change", bad, file}, strings.NewReader(""), &out, &errb); code != 2 || !strings.Contains(errb.String(), "--last-change") {
			t.Errorf("--last-change %s: exit %d, %s", bad, code, errb.String())
		}
	}
}

func TestLayersCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runLayers(t.Context(), []string{"--kind", "platform", "--tag", "tiling"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "sway") || !strings.Contains(out.String(), "i3") || strings.Contains(out.String(), "gnome") {
		t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := runLayers(t.Context(), []string{"ssh", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var ls []struct{ ID string }
	if err := json.Unmarshal(out.Bytes(), &ls); err != nil || len(ls) == 0 {
		t.Fatalf("%v: %s", err, out.String())
	}
	if code := runLayers(t.Context(), []string{"--kind", "nope"}, &out, &errb); code != 2 {
		t.Errorf("bad kind: exit %d", code)
	}
	if code := runLayers(t.Context(), []string{"no-such-layer-anywhere"}, &out, &errb); code != 1 {
		t.Errorf("no match: exit %d", code)
	}
}
