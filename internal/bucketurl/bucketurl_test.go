package bucketurl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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

func TestRedactHidesRequestSignatures(t *testing.T) {
	base := errors.New(`Get "http://127.0.0.1:1/acct/cont?comp=list&prefix=currents%2F&restype=container&sig=azSECRET%2Bx%3D&sv=2020": dial tcp 127.0.0.1:1: connect: connection refused`)
	err := Redact(fmt.Errorf("blob: %w", base))
	if strings.Contains(err.Error(), "azSECRET") || !strings.Contains(err.Error(), "&sig=xxxxx&sv=2020") {
		t.Errorf("Redact kept the signature or the rest: %v", err)
	}
	if !errors.Is(err, base) {
		t.Error("the redacted error no longer wraps the original")
	}
	plain := errors.New("no signature here")
	if Redact(plain) != plain || Redact(nil) != nil {
		t.Error("Redact changed an error without a signature, or nil")
	}
}

// LocalDir resolves a file:// bucket's directory as fileblob does: absolute,
// or relative to the working directory when the host is ".".
func TestLocalDir(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]string{
		"file:///data/currents?create_dir=true": "/data/currents",
		"file://./out/dead":                     filepath.Join(wd, "out/dead"),
		"s3://bucket?region=us-east-1":          "",
		"gs://bucket":                           "",
	} {
		if got := LocalDir(raw); got != want {
			t.Errorf("LocalDir(%q) = %q, want %q", raw, got, want)
		}
	}
}
