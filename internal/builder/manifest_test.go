package builder

import (
	"strings"
	"testing"
)

func TestFirstDifferenceNamesTheEarliestPart(t *testing.T) {
	base := func() *Manifest {
		return &Manifest{BuildKey: "k", Artifacts: []Artifact{
			{Name: "live/vmlinuz", SHA256: "a"}, {Name: "live/initrd.img", SHA256: "b"},
			{Name: "live/filesystem.squashfs", SHA256: "c"}, {Name: "boot/grub/efiboot.img", SHA256: "d"},
			{Name: "image.iso", SHA256: "e"},
		}}
	}
	a, b := base(), base()
	if d := FirstDifference(a, b); d != "" {
		t.Fatalf("identical manifests differ at %q", d)
	}
	b.Artifacts[2].SHA256 = "x" // squashfs
	b.Artifacts[4].SHA256 = "y" // and therefore the ISO
	if d := FirstDifference(a, b); d != "live/filesystem.squashfs" {
		t.Fatalf("first difference %q, want the squashfs", d)
	}
	c := base()
	c.BuildKey = "other"
	if d := FirstDifference(a, c); !strings.Contains(d, "pinned inputs") {
		t.Fatalf("a changed key is not reported: %q", d)
	}
}

func TestLineWriterSplitsLinesAndProgressRedraws(t *testing.T) {
	var got []string
	w := &lineWriter{fn: func(s string) { got = append(got, s) }}
	w.Write([]byte("one\ntw"))
	w.Write([]byte("o\r[==  ] 10%\r[=== ] 20%\n\nlast"))
	w.Flush()
	want := []string{"one", "two", "[==  ] 10%", "[=== ] 20%", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q", got)
	}
}

func TestVolumeID(t *testing.T) {
	if v := volumeID("my-very-long-recipe-name-for-a-desktop"); v != "DEBATE_MY_VERY_LONG_RECIPE_NAME_" || len(v) > 32 {
		t.Fatalf("volume id %q", v)
	}
}
