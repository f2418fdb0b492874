package recipe

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// Keys shared by the tests: real keys made with ssh-keygen, a real hash made with
// `openssl passwd -6`.
const (
	testEd25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKUyaepiw1RF6aI3s6VV4TTsCcb4otU+5VuhcGeOCRs alice@laptop"
	testECDSA   = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMzcKISohlvlji1svPW0BUABsMS+iQYsQ+Ks6+uearvrZ5htjHcUg8bsZAm3kp9EzDfqoPLxNcMwPF+39ak9eH4= alice@phone"
	testSHA512  = "$6$debatesalt$ElUyXAz3LM7kWtcoKtM.1kttP/IRj32HRqqcwGmHkil4/sXpgEB6KQTZS.0tumLb3ZHxl0IdMMlLvb40RM.2m."
)

// minimal returns the smallest valid recipe.
func minimal() *Recipe {
	return &Recipe{
		APIVersion: APIVersion,
		Name:       "minimal",
		Base:       Base{Distribution: "debian", Release: "bookworm"},
	}
}

func strp(s string) *string { return &s }

func readFull(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustParse(t *testing.T, data string, f Format) *Recipe {
	t.Helper()
	r, err := Parse([]byte(data), f)
	if err != nil {
		t.Fatalf("Parse: %v\n--- input:\n%s", err, data)
	}
	return r
}

// fieldErrors returns the FieldErrors of err, failing the test if err is not a
// ValidationError matching ErrInvalid.
func fieldErrors(t *testing.T, err error) []FieldError {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got none")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error is %T, not *ValidationError: %v", err, err)
	}
	return ve.Errors
}

func hasError(errs []FieldError, path, code string) bool {
	for _, e := range errs {
		if e.Path == path && e.Code == code {
			return true
		}
	}
	return false
}

func dump(errs []FieldError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("  " + e.Path + " [" + e.Code + "] " + e.Message + "\n")
	}
	return b.String()
}

func TestFullExampleParsesInBothFormats(t *testing.T) {
	y := mustParse(t, string(readFull(t)), Auto)
	if y.Name != "workstation" || len(y.Files) != 3 || len(y.Users) != 2 {
		t.Fatalf("unexpected parse: %+v", y)
	}
	if *y.Files[0].Content != "Welcome to the workstation.\n" {
		t.Errorf("content = %q", *y.Files[0].Content)
	}
	canon, err := y.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	j := mustParse(t, string(canon), Auto)
	if j.Hash() != y.Hash() {
		t.Errorf("YAML and its canonical JSON hash differently:\n%s\n%s", y.Hash(), j.Hash())
	}
}
