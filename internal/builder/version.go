// Package builder runs the stage pipeline that turns a recipe into an ISO.
package builder

// Version names the builder. It is part of every build key: a builder that assembles
// images differently must change it, so that no stale cache entry is served.
const Version = "debate-builder/0.1.0"
