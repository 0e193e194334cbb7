package kiosk

import "time"

// httpSealIdle: a seal session on the HTTP fallback unused for this long is gone.
const httpSealIdle = 2 * time.Minute
