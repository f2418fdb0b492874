package spelling

import (
	"slices"
	"strings"
	"testing"
)

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		limit int
		want  int
	}{
		{"kitten", "sitting", 10, 3},
		{"", "abc", 10, 3},
		{"same", "same", 10, 0},
		{"firefox-esr", "firefox", 10, 4},
		{"kitten", "sitting", 2, 2},                                  // bounded
		{strings.Repeat("a", 5000), strings.Repeat("b", 5000), 3, 3}, // stops early on long input
	} {
		if got := Distance(tc.a, tc.b, tc.limit); got != tc.want {
			t.Errorf("Distance(%.10q, %.10q, %d) = %d, want %d", tc.a, tc.b, tc.limit, got, tc.want)
		}
	}
}

func TestNearest(t *testing.T) {
	names := []string{"vim", "vim-tiny", "nano", "firefox-esr", "network-manager", "gnome-shell", "xfce4", "pulseaudio"}
	for _, tc := range []struct{ name, want string }{
		{"vmi", "vim"},                         // a swap: two edits
		{"Nano", "nano"},                       // case ignored, the candidate's spelling kept
		{"netwrok-manager", "network-manager"}, // long names allow a little more
		{"firefox-ers", "firefox-esr"},
		{"emacs", ""},                     // nothing close
		{strings.Repeat("x", 100000), ""}, // huge input: pruned by length
		{"vim", "vim"},
	} {
		if got := Nearest(tc.name, slices.Values(names)); got != tc.want {
			t.Errorf("Nearest(%.20q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	// Ties go to the alphabetically first, whatever the order.
	for _, order := range [][]string{{"xfce5", "xfce3"}, {"xfce3", "xfce5"}} {
		if got := Nearest("xfce4", slices.Values(order)); got != "xfce3" {
			t.Errorf("tie in order %v: %q, want xfce3", order, got)
		}
	}
}
