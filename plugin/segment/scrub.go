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

// clip is the first n bytes of text with the secrets removed. A secret the
// cut splits leaves a prefix of itself at the end: that goes too.
func (s scrubber) clip(text string, n int) string {
	if len(text) > n {
		text = text[:n]
		for _, secret := range s.secrets {
			for k := min(len(secret)-1, len(text)); k > 0; k-- {
				if strings.HasSuffix(text, secret[:k]) {
					text = text[:len(text)-k]
					break
				}
			}
		}
	}
	return s.clean(text)
}
