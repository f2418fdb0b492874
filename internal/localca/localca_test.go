package localca

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCreatedOnceThenReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca1, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", st.Mode(), err)
	}
	ca2, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ca1.Certificate().Equal(ca2.Certificate()) {
		t.Fatal("second load made a new CA")
	}
}

func TestIssuedCertificateVerifies(t *testing.T) {
	ca, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue([]string{"localhost", "127.0.0.1", "*.dev.example"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "api.dev.example"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool()}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "evil.example", Roots: ca.Pool()}); err == nil {
		t.Error("certificate verifies for a host it was not issued for")
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost"}); err == nil {
		t.Error("certificate verifies against the system roots")
	}
}

func TestIssuerRenewsBeforeExpiry(t *testing.T) {
	ca, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	iss, err := NewIssuer(ca, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := iss.GetCertificate(&tls.ClientHelloInfo{})
	again, _ := iss.GetCertificate(&tls.ClientHelloInfo{})
	if first != again {
		t.Fatal("fresh certificate re-issued needlessly")
	}
	// Pretend the current one is about to expire.
	short, err := ca.Issue([]string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	iss.cert = short
	renewed, _ := iss.GetCertificate(&tls.ClientHelloInfo{})
	if renewed == short || time.Until(renewed.Leaf.NotAfter) < LeafValidity/2 {
		t.Fatal("expiring certificate not renewed")
	}
}

func TestHalfWrittenCARefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err == nil {
		t.Fatal("a folder with only a key was accepted")
	}
}
