package segment

import (
	"encoding/base64"
	"strings"
)

// scrubber removes the write keys, plain or in a Basic auth header, from
// text that may reach logs or errors (say, a proxy echoing the request).
type scrubber struct{ secrets []string }

func newScrubber(writeKeys ...string) scrubber {
	var s scrubber
	for _, key := range writeKeys {
		if key != "" {
			s.secrets = append(s.secrets, base64.StdEncoding.EncodeToString([]byte(key+":")), key)
		}
	}
	return s
}

func (s scrubber) clean(text string) string {
	for _, secret := range s.secrets {
		text = strings.ReplaceAll(text, secret, "[redacted]")
	}
	return text
}
