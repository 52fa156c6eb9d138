package bucketurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/currents-connect/currents-connect/tests/buckets"
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

// TestCheckQuotesNothingOfAnUnparsableURL: url.Parse's reasons quote a
// bad escape's three characters and what it took for a port, both pieces
// of a password pasted unescaped (a % or a / in it): the refusal names the
// setting and the reason, without them.
func TestCheckQuotesNothingOfAnUnparsableURL(t *testing.T) {
	for raw, want := range map[string]string{
		"s3://AKIA:se%zzkret@currents?region=us-east-1": "url is not a URL: an invalid % escape",
		"s3://AKIA:sekret/word@currents":                "url is not a URL: an invalid port after the host",
	} {
		err := Check("url", raw)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "%zz") || strings.Contains(err.Error(), "sekret") {
			t.Errorf("%s: refused with %v, want %q and no part of the password", raw, err, want)
		}
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

// What a bucket's driver refuses in its URL fails Check, at startup, named
// by its field, with the bucket and without the URL's credentials: opened
// only at Connect, it failed every attempt, retried for ever.
func TestCheckRefusesWhatTheDriverRefuses(t *testing.T) {
	noCredentials(t)
	for raw, want := range map[string]string{
		"s3://acme?regin=us-east-1":                      `url "s3://acme": unknown query parameter "regin"`,
		"s3://key:secret@acme?region=x&token=secret":     `url "s3://acme": unknown query parameter "token"`,
		"s3://acme?region=x&use_path_style=maybe":        `url "s3://acme": invalid value for "use_path_style"`,
		"gs://acme?anonymus=true":                        `url "gs://acme": invalid query parameter "anonymus"`,
		"azblob://currents?storage_acount=acct":          `url "azblob://currents": unknown query parameter "storage_acount"`,
		"azblob://currents":                              `url "azblob://currents": no storage account: set AZURE_STORAGE_ACCOUNT`,
		"file:///tmp?create_dirs=true":                   "", // CheckLocalDir opens file:// buckets
		"s3://acme?region=us-east-1&sig=secret&x=secret": `unknown query parameter`,
		// gocloud's own prefix= and key= are not taken: a notification's key
		// would get the prefix twice.
		"s3://acme?region=x&prefix=currents/": `url "s3://acme": prefix= is not taken here: give the prefix as the input's prefix (CURRENTS_PREFIX`,
		"gs://acme?key=one.avro":              `url "gs://acme": key= is not taken here`,
	} {
		err := Check("url", raw)
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", raw, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error %v, want %q and no credential", raw, err, want)
		}
	}
}

// The URLs the drivers take pass Check with no credentials and without a
// connection anywhere: an outage, or credentials not there yet, are
// Connect's to retry.
func TestCheckNeedsNoCredentialsNorNetwork(t *testing.T) {
	dialed := noCredentials(t)
	for _, raw := range []string{
		"s3://acme?region=us-east-1",
		"s3://acme?region=us-east-1&endpoint=http://127.0.0.1:1&use_path_style=true&disable_https=true",
		"gs://acme",
		"gs://acme?anonymous=true",
		"gs://acme?grpc=true",
		"azblob://currents?storage_account=acct",
		"azblob://currents?storage_account=acct&protocol=http&domain=127.0.0.1:1&localemu=true",
	} {
		if err := Check("url", raw); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
	if n := dialed(); n > 0 {
		t.Errorf("checking the URLs opened %d connections", n)
	}
}

// noCredentials leaves the test no cloud credentials, and sends every
// connection the drivers may open (through a proxy, to a metadata server)
// to a listener: dialed says how many it took.
func noCredentials(t *testing.T) (dialed func() int) {
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY",
		"AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING", "NO_PROXY", "no_proxy"} {
		t.Setenv(v, "")
	}
	t.Setenv("HOME", t.TempDir()) // no shared config files
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			_ = c.Close()
		}
	}()
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "AWS_EC2_METADATA_SERVICE_ENDPOINT"} {
		t.Setenv(v, "http://"+l.Addr().String())
	}
	t.Setenv("GCE_METADATA_HOST", l.Addr().String())
	return func() int { return int(n.Load()) }
}

// A path after a cloud bucket's name (s3://bucket/exports, the prefix put in
// the URL) is refused at start, naming the prefix setting: the drivers open
// the bucket by its host and drop the path without a word, so another prefix
// was listed than the one meant. A file:// URL's path is its directory, and
// a lone / is no path.
func TestCheckRefusesAPathAfterACloudBucket(t *testing.T) {
	noCredentials(t)
	for _, raw := range []string{"s3://acme/exports?region=us-east-1", "gs://acme/currents/", "azblob://currents/braze?storage_account=acct"} {
		err := Check("url", raw)
		if err == nil || !strings.Contains(err.Error(), "names the bucket only") || !strings.Contains(err.Error(), "CURRENTS_PREFIX") {
			t.Errorf("%s: error %v, want a refusal of the path naming CURRENTS_PREFIX", raw, err)
		}
	}
	for _, raw := range []string{"s3://acme/?region=us-east-1", "gs://acme/", "file:///tmp/exports"} {
		if err := Check("url", raw); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

// An s3 URL with no region, where the AWS config (AWS_REGION, the profile)
// gives none either, is refused at start: the SDK guesses none, and every
// listing failed with "Invalid region: region was not a valid DNS name",
// retried for ever. A region from the environment or the profile passes.
func TestCheckRefusesAnS3BucketWithNoRegion(t *testing.T) {
	noCredentials(t)
	config := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(config, []byte("[profile currents]\nregion = eu-west-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", config)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	err := Check("url", "s3://acme")
	if err == nil || !strings.Contains(err.Error(), `url "s3://acme": no AWS region`) || !strings.Contains(err.Error(), "?region=") {
		t.Errorf("no region: error %v, want a refusal naming ?region=", err)
	}
	for _, raw := range []string{"s3://acme?region=us-east-1", "s3://acme?profile=currents"} {
		if err := Check("url", raw); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
	t.Setenv("AWS_REGION", "us-east-1")
	if err := Check("url", "s3://acme"); err != nil {
		t.Errorf("AWS_REGION set: %v", err)
	}
}

// An s3 URL with an endpoint= of its own (MinIO, Ceph, R2, LocalStack)
// needs no region: the SDK sends its requests there with none, so such a URL
// passes Check, and a bucket opened by it is written and read back. An
// endpoint from the environment (AWS_ENDPOINT_URL_S3) goes through the SDK's
// own rules, which do want a region: that one is still refused, as is an
// endpoint of AWS's own.
func TestCheckTakesAnS3EndpointWithNoRegion(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	raw := strings.Replace(b.URL, "&region=us-east-1", "", 1)
	if err := Check("url", raw); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	bucket, err := Open(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bucket.Close() }()
	if err := bucket.WriteAll(t.Context(), "k", []byte("v"), nil); err != nil {
		t.Fatalf("write with no region: %v", err)
	}
	if got, err := bucket.ReadAll(t.Context(), "k"); err != nil || string(got) != "v" {
		t.Fatalf("read with no region: %q, %v", got, err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", u.Query().Get("endpoint"))
	if err := Check("url", "s3://connect-test?use_path_style=true"); err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Errorf("endpoint from AWS_ENDPOINT_URL_S3, no region: error %v, want a refusal", err)
	}
	// AWS's own endpoints (a VPC endpoint) refuse a request signed for no region.
	aws := "s3://acme?endpoint=https://bucket.vpce-1a2b.s3.us-east-1.vpce.amazonaws.com"
	if err := Check("url", aws); err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Errorf("%s: error %v, want a refusal", aws, err)
	}
}

// file://localhost/path is the same directory as file:///path (RFC 8089;
// fileblob's docs list it): it passes Check, opens, and LocalDir names it.
// Another host would be dropped by fileblob, and is still refused.
func TestCheckTakesAFileURLOnLocalhost(t *testing.T) {
	dir := t.TempDir()
	raw := "file://localhost" + filepath.ToSlash(dir)
	if err := Check("url", raw); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if err := CheckLocalDir(t.Context(), "url", raw); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if got := LocalDir(raw); got != dir {
		t.Errorf("LocalDir(%q) = %q, want %q", raw, got, dir)
	}
	if err := Check("url", "file://data"+filepath.ToSlash(dir)); err == nil {
		t.Error("file://data/…: no error, want the host refused")
	}
}
