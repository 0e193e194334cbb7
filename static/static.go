// Package static holds the kiosk's pages, embedded in the binary so that the
// kiosk works on a hotspot with no internet and loads nothing from elsewhere.
package static

import "embed"

// Files are the pages, scripts, styles, string catalogues and notice
// templates, served as they are.
//
//go:embed *.html *.css *.js i18n/*.json templates/*.json
var Files embed.FS
