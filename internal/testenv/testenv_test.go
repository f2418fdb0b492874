package testenv

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// recorder stands in for a test's T to watch Need stop it: Fatalf and Skipf end the
// goroutine, as FailNow and SkipNow do.
type recorder struct {
	testing.TB
	failed, skipped, goneOn bool
	msg                     string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func need(problems ...error) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Need(r, "the frobnicator", problems...)
		r.goneOn = true
	}()
	<-done
	return r
}

func TestNeedFailsUnderCIAndSkipsElsewhere(t *testing.T) {
	for _, tc := range []struct {
		ci                 string
		wantFail, wantSkip bool
	}{{"true", true, false}, {"", false, true}, {"false", false, true}} {
		t.Setenv("CI", tc.ci)
		r := need(nil, errors.New("frob not found"))
		if r.failed != tc.wantFail || r.skipped != tc.wantSkip || r.goneOn {
			t.Errorf("CI=%q: failed %v, skipped %v, went on %v", tc.ci, r.failed, r.skipped, r.goneOn)
		}
		if !strings.Contains(r.msg, "the frobnicator unavailable") || !strings.Contains(r.msg, "frob not found") {
			t.Errorf("CI=%q: %q does not say what is missing", tc.ci, r.msg)
		}
		if r := need(nil, nil); r.failed || r.skipped || !r.goneOn {
			t.Errorf("CI=%q: no problem, yet the test was stopped (%q)", tc.ci, r.msg)
		}
	}
}

func TestProblemsNameWhatIsMissing(t *testing.T) {
	if Missing(nil) != nil || Tool("sh", "dash") != nil || File("/", "base-files") != nil {
		t.Fatal("a present tool or file is reported missing")
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{Missing([]string{"xorriso", "mmdebstrap"}), "missing tools: xorriso, mmdebstrap"},
		{Tool("no-such-tool-xyz", "xyz-tools"), "no-such-tool-xyz not found (install the xyz-tools package)"},
		{File("/no/such/file", "xyz-data"), "/no/such/file not found (install the xyz-data package)"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("got %v, want it to say %q", tc.err, tc.want)
		}
	}
}
