package tally

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mode says who can end up in a round's recording.
type Mode string

const (
	// ModeRoom: anyone present may be seen or heard, so everyone present
	// must consent (R1).
	ModeRoom Mode = "room"
	// ModeLecturerOnly: only the lecturer's screen and voice are recorded,
	// which needs no consent from the room (000, 001); the lecturer consents
	// by starting the recording.
	ModeLecturerOnly Mode = "lecturer-only"
)

// NoticeFields returns the fields a structured notice may have, in the
// order a notice is shown: what R4 says people must be told before they
// choose. The templates in static/templates fill each of them. Each call
// returns a copy, so no caller can change what the store accepts.
func NoticeFields() []string { return slices.Clone(noticeFields) }

var noticeFields = []string{
	"course", "purpose", "recorded", "camera", "storage", "sharing", "retention",
	"publication", "access", "legal_basis", "controller", "contact", "questions",
}

// RoundSpec is what a lecturer gives to start a round. Notice and Fields are
// two ways to write the notice; a spec sets at most one of them.
type RoundSpec struct {
	Purpose string
	Notice  string            // the notice as one text
	Fields  map[string]string // a structured notice: NoticeFields to texts
	// Template is the language tag of the template the notice was written
	// from; phones label the fields in it. Empty means "en".
	Template string
	// Series names a series of sessions with the same purpose and notice,
	// e.g. a course code (R5). Empty means none.
	Series string
	Mode   Mode // empty means ModeRoom
}

// Limits on what a lecturer can set. A notice longer than a few pages helps
// nobody on a phone; a series name is a course code, not a text.
const (
	MaxPurposeLen = 500
	MaxNoticeLen  = 20_000
	MaxSeriesLen  = 100
)

// langPattern is a BCP 47 tag as the templates use them (en, nb, nn, sv,
// pt-BR); it goes into a URL path on the phone, so nothing else may pass.
var langPattern = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{1,8}){0,2}$`)

// normalize trims the spec's texts, drops empty notice fields and checks
// every limit. It returns ErrInvalid, saying what is wrong, or the spec in
// the form that is stored and hashed.
func (spec RoundSpec) normalize() (RoundSpec, error) {
	out := RoundSpec{
		Purpose:  strings.TrimSpace(spec.Purpose),
		Notice:   strings.TrimSpace(spec.Notice),
		Template: spec.Template,
		Series:   strings.TrimSpace(spec.Series),
		Mode:     spec.Mode,
	}
	texts := []string{out.Purpose, out.Notice, out.Series}
	if spec.Fields != nil {
		if out.Notice != "" {
			return out, fmt.Errorf("%w: give the notice as text or as fields, not both", ErrInvalid)
		}
		out.Fields = map[string]string{}
		for k, v := range spec.Fields {
			if !slices.Contains(noticeFields, k) {
				return out, fmt.Errorf("%w: unknown notice field %q; the fields are %s", ErrInvalid, k, strings.Join(noticeFields, ", "))
			}
			if v = strings.TrimSpace(v); v != "" {
				out.Fields[k] = v
				texts = append(texts, v)
			}
		}
	}
	total := 0
	for _, t := range texts {
		if !utf8.ValidString(t) {
			return out, fmt.Errorf("%w: purpose, notice and series must be UTF-8 text", ErrInvalid)
		}
		total += utf8.RuneCountInString(t)
	}
	switch {
	case utf8.RuneCountInString(out.Purpose) > MaxPurposeLen:
		return out, fmt.Errorf("%w: purpose longer than %d characters", ErrInvalid, MaxPurposeLen)
	case total-utf8.RuneCountInString(out.Purpose)-utf8.RuneCountInString(out.Series) > MaxNoticeLen:
		return out, fmt.Errorf("%w: notice longer than %d characters", ErrInvalid, MaxNoticeLen)
	case utf8.RuneCountInString(out.Series) > MaxSeriesLen:
		return out, fmt.Errorf("%w: series name longer than %d characters", ErrInvalid, MaxSeriesLen)
	case strings.IndexFunc(out.Series, unicode.IsControl) >= 0:
		return out, fmt.Errorf("%w: series name has control characters", ErrInvalid)
	case out.Template != "" && !langPattern.MatchString(out.Template):
		return out, fmt.Errorf("%w: template must be a language tag such as en, nb, nn or sv", ErrInvalid)
	}
	switch out.Mode {
	case "":
		out.Mode = ModeRoom
	case ModeRoom:
	case ModeLecturerOnly:
		if out.Series != "" {
			return out, fmt.Errorf("%w: a lecturer-only round asks nobody, so it cannot be part of a consent series", ErrInvalid)
		}
	default:
		return out, fmt.Errorf("%w: mode must be %q or %q", ErrInvalid, ModeRoom, ModeLecturerOnly)
	}
	return out, nil
}

// canonicalNotice is the notice as stored: a JSON string for a notice given
// as text, or a JSON object with its keys sorted for a structured one.
func (spec RoundSpec) canonicalNotice() string {
	if spec.Fields != nil {
		return canonicalJSON(spec.Fields)
	}
	return canonicalJSON(spec.Notice)
}

// NoticeHash is the hex SHA-256 of the canonical text of what a round asks
// about (R3): the JSON object {"mode":…,"notice":…,"purpose":…} with its keys
// sorted, no insignificant space and no HTML escaping, where notice is the
// canonical notice (a string, or an object with sorted keys). A slip, or a
// series consent, is bound to exactly this hash.
func NoticeHash(spec RoundSpec) string {
	n, err := spec.normalize()
	if err != nil {
		n = spec
	}
	return noticeHash(n.Purpose, n.canonicalNotice(), n.Mode)
}

func noticeHash(purpose, canonicalNotice string, mode Mode) string {
	text := canonicalJSON(map[string]any{
		"mode":    mode,
		"notice":  json.RawMessage(canonicalNotice),
		"purpose": purpose,
	})
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// canonicalJSON encodes v with sorted map keys and without escaping <, >
// and &, so that anyone can recompute a hash from the text the record shows.
func canonicalJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // only strings and maps of strings come here
	}
	return strings.TrimSuffix(b.String(), "\n")
}
