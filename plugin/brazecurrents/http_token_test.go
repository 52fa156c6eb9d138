package brazecurrents

import (
	"net/http"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// TestHTTPInputAcceptsThePreviousTokenDuringARotation: with previous_token
// set, requests carrying either token are accepted and those carrying the
// old one counted (at 0 from start), so that an operator sees when Braze
// has moved to the new one. Before, a token could only change in Braze and
// here at the same moment: every request between the two got 401.
func TestHTTPInputAcceptsThePreviousTokenDuringARotation(t *testing.T) {
	const previousTokenMetric = "braze_currents_http_previous_token_requests"
	res, metrics := promscrape.Resources(t)
	_, url := startHTTPInputWith(t, res, "token: new\nprevious_token: old")
	promscrape.WantZero(t, promscrape.Get(t, metrics), []promscrape.Series{{Name: previousTokenMetric}})
	for _, c := range []struct {
		token string
		want  int
	}{{"new", http.StatusOK}, {"old", http.StatusOK}, {"older", http.StatusUnauthorized}, {"", http.StatusUnauthorized}} {
		if status, text := postTo(t, http.MethodPost, url, c.token); status != c.want {
			t.Errorf("token %q: %d %q, want %d", c.token, status, text, c.want)
		}
	}
	if v, _ := promscrape.Get(t, metrics).Counter(previousTokenMetric, "", ""); v != 1 {
		t.Errorf("%s = %v after one request with the previous token, want 1", previousTokenMetric, v)
	}
}

// TestHTTPInputChecksThePreviousToken: previous_token is refused at start
// as token is when no request could carry it, without printing it, and
// when it equals token (a rotation half done).
func TestHTTPInputChecksThePreviousToken(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{"token: s3cret\nprevious_token: \"0ld \"", "previous_token starts or ends with whitespace"},
		{"token: s3cret\nprevious_token: \"0l\\x00d\"", "previous_token holds a control character"},
		{"token: s3cret\nprevious_token: s3cret", "previous_token is the same as token"},
	} {
		parsed, err := httpInputSpec().ParseYAML(c.conf, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = httpInputFromParsed(parsed, service.MockResources())
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "0l") || strings.Contains(err.Error(), "s3") {
			t.Errorf("%q: error %v, want one saying %q, without the token", c.conf, err, c.want)
		}
	}
}
