package brazecurrents

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"unicode"
)

// tokenMatch is which configured token a request carries.
type tokenMatch int

const (
	noToken tokenMatch = iota
	currentToken
	previousToken // during a rotation, the one Braze sends until it is updated
)

// checkToken refuses a token no Authorization header could carry, without
// printing it: every Braze request would get 401, logged at debug level
// only, until Braze gave up after 5 days.
func checkToken(field, token string) error {
	// HTTP strips a header value's surrounding whitespace, and no header
	// carries a control character: such a token could never match.
	if strings.TrimSpace(token) != token {
		return fmt.Errorf("%s starts or ends with whitespace (a pasted newline or space?), which the Authorization header cannot carry: remove it here and in Braze", field)
	}
	// Connect writes an environment variable's newline into the config as the
	// two characters \n, which a block scalar (the shipped config's) keeps.
	if strings.HasPrefix(token, `\n`) || strings.HasSuffix(token, `\n`) {
		return fmt.Errorf(`%s starts or ends with the characters \n, which is how Connect writes a newline of an environment variable into a config (a secret file's last newline?): Braze's requests would not carry it; remove the newline`, field)
	}
	if strings.ContainsFunc(token, unicode.IsControl) {
		return fmt.Errorf("%s holds a control character, which the Authorization header cannot carry", field)
	}
	return nil
}

// tokenOf is which token the request carries, in the Authorization header
// only. Comparing hashes keeps the time independent of the token's length
// as well as its content; both are compared, so that the time does not
// tell which matched either.
func (in *httpInput) tokenOf(r *http.Request) tokenMatch {
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return noToken
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return noToken
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	current := subtle.ConstantTimeCompare(sum[:], in.tokenSum[:])
	previous := subtle.ConstantTimeCompare(sum[:], in.previousSum[:]) & in.hasPrevious
	switch {
	case current == 1:
		return currentToken
	case previous == 1:
		return previousToken
	}
	return noToken
}

// authorised reports whether the request carries either token.
func (in *httpInput) authorised(r *http.Request) bool { return in.tokenOf(r) != noToken }
