package httpapi

import "net/http"

// setCookie is the only way handlers set cookies: whatever the caller asked, a cookie is
// Secure (HTTPS only), HttpOnly (out of reach of scripts) and SameSite=Lax (not sent
// on cross-site sub-requests), with Path "/" when none was given.
func setCookie(w http.ResponseWriter, c *http.Cookie) {
	cc := *c
	cc.Secure = true
	cc.HttpOnly = true
	if cc.SameSite != http.SameSiteStrictMode {
		cc.SameSite = http.SameSiteLaxMode
	}
	if cc.Path == "" {
		cc.Path = "/"
	}
	http.SetCookie(w, &cc)
}
