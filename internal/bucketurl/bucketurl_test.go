package bucketurl

import "testing"

func TestNameDropsQueryAndCredentials(t *testing.T) {
	for raw, want := range map[string]string{
		"s3://bucket?region=us-east-1&endpoint=http://x": "s3://bucket",
		"s3://user:secret@bucket/x?y=z":                  "s3://bucket/x",
		"file:///data/currents":                          "file:///data/currents",
		"gs://b/with@sign/in/path":                       "gs://b/with@sign/in/path",
	} {
		if got := Name(raw); got != want {
			t.Errorf("Name(%q) = %q, want %q", raw, got, want)
		}
	}
}
