package httpapi

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"debate/internal/config"
	"debate/internal/localca"
)

// tlsSetup is the server's TLS configuration and where its certificates come from.
type tlsSetup struct {
	config *tls.Config
	acme   *autocert.Manager // with --tls-auto: also answers http-01 challenges
	caPath string            // with --tls-self-signed: the CA certificate to trust
	hsts   string
}

// modernTLS is TLS 1.2 and up; for 1.2, forward-secret AEAD suites only (TLS 1.3's suites
// are all modern and not configurable).
func modernTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
}

func newTLSSetup(cfg *config.Serve, logger *slog.Logger) (*tlsSetup, error) {
	t := &tlsSetup{config: modernTLS(), hsts: "max-age=63072000; includeSubDomains"}
	switch cfg.TLS.Mode {
	case config.TLSFiles:
		r, err := newCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile, logger)
		if err != nil {
			return nil, &config.Error{Flag: "--tls-cert", Env: config.EnvName("tls-cert"), Reason: err.Error()}
		}
		t.config.GetCertificate = r.getCertificate
	case config.TLSAuto:
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(filepath.Join(cfg.StateDir, "acme")),
			HostPolicy: autocert.HostWhitelist(cfg.TLS.AutoDomains...),
			Email:      cfg.TLS.ACMEEmail,
		}
		if cfg.TLS.ACMEDirectory != "" {
			m.Client = &acme.Client{DirectoryURL: cfg.TLS.ACMEDirectory}
		}
		t.acme = m
		t.config.GetCertificate = m.GetCertificate
		// TLS-ALPN-01 challenges arrive on the HTTPS port itself.
		t.config.NextProtos = append(t.config.NextProtos, acme.ALPNProto)
	case config.TLSSelfSigned:
		ca, err := localca.LoadOrCreate(filepath.Join(cfg.StateDir, "ca"))
		if err != nil {
			return nil, &config.Error{Flag: "--state-dir", Env: config.EnvName("state-dir"), Reason: err.Error()}
		}
		iss, err := localca.NewIssuer(ca, cfg.AllowedHosts)
		if err != nil {
			return nil, &config.Error{Flag: "--allowed-hosts", Env: config.EnvName("allowed-hosts"), Reason: err.Error()}
		}
		t.config.GetCertificate = iss.GetCertificate
		t.caPath = ca.CertPath()
		// A development CA on localhost: a short HSTS, so that other local servers on
		// plain HTTP are not locked out for years.
		t.hsts = "max-age=86400"
	default:
		return nil, fmt.Errorf("httpapi: TLS mode %v", cfg.TLS.Mode)
	}
	return t, nil
}

// certReloader serves a certificate from files and picks up renewed files (certbot,
// an operator's copy) without a restart: it looks at their times at most every 30 s.
type certReloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	modTime   time.Time
	checkedAt time.Time
}

func newCertReloader(certFile, keyFile string, logger *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, logger: logger}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) newestModTime() time.Time {
	var t time.Time
	for _, f := range []string{r.certFile, r.keyFile} {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t
}

func (r *certReloader) load() error {
	mt := r.newestModTime()
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load %s / %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.modTime = &c, mt
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checkedAt) > 30*time.Second {
		r.checkedAt = now
		if mt := r.newestModTime(); mt.After(r.modTime) {
			if err := r.load(); err != nil {
				// Keep serving the old certificate; a half-copied renewal is common.
				r.logger.Warn("certificate files changed but do not load; keeping the previous one", slog.String("error", err.Error()))
			} else {
				r.logger.Info("certificate reloaded", slog.String("file", r.certFile))
			}
		}
	}
	return r.cert, nil
}
