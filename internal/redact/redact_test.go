package redact

import "testing"

// TestQueryHidesTheValuesOfEveryQuotedURL: a URL quoted encoded again, its
// parameters in another order, shows no value; the punctuation of the
// sentence around it stays.
func TestQueryHidesTheValuesOfEveryQuotedURL(t *testing.T) {
	for msg, want := range map[string]string{
		`open topic awssqs://h/1/q?auth=a%2Fb&region=us-east-2: unknown query parameter "auth"`: `open topic awssqs://h/1/q?auth=xxxxx&region=xxxxx: unknown query parameter "auth"`,
		`Get "http://h/?k=v&sig=s": refused`:                                                    `Get "http://h/?k=xxxxx&sig=xxxxx": refused`,
		`no URL here, a=b`:                                                                      `no URL here, a=b`,
	} {
		if got := Query(msg); got != want {
			t.Errorf("Query(%s) = %s, want %s", msg, got, want)
		}
	}
}
