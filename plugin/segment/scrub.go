package segment

import (
	"encoding/base64"
	"strings"
)

// scrubber removes the write key, plain or in a Basic auth header, from text
// that may reach logs or errors (say, a proxy echoing the request).
type scrubber struct{ secrets []string }

func newScrubber(writeKey string) scrubber {
	if writeKey == "" {
		return scrubber{}
	}
	basic := base64.StdEncoding.EncodeToString([]byte(writeKey + ":"))
	return scrubber{secrets: []string{basic, writeKey}}
}

func (s scrubber) clean(text string) string {
	for _, secret := range s.secrets {
		text = strings.ReplaceAll(text, secret, "[redacted]")
	}
	return text
}
