package buckets

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

const (
	s3Bucket = "connect-test"
	s3Region = "us-east-1"
	s3Key    = "test-access-key" // gofakes3 does not check signatures
	s3Secret = "test-secret-key"
)

// StartS3 serves an in-memory gofakes3 on 127.0.0.1 with one empty bucket;
// the server stops when the test ends.
func StartS3(t testing.TB) *Bucket {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(s3Bucket); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	stop := func() {
		// Drop connections first: Close would wait for a handler still
		// streaming to a reader the test left open.
		srv.CloseClientConnections()
		srv.Close()
	}
	t.Cleanup(stop)
	b := newS3Bucket(srv.URL, s3Bucket)
	b.Stop = stop
	return b
}

// newS3Bucket describes bucket name on the S3 endpoint (http://host:port).
func newS3Bucket(endpoint, name string) *Bucket {
	return &Bucket{
		URL: "s3://" + name + "?endpoint=" + endpoint +
			"&region=" + s3Region + "&use_path_style=true&disable_https=true",
		Env:  s3Env(),
		Name: name,
		open: func(ctx context.Context) (*blob.Bucket, error) {
			client := s3.NewFromConfig(aws.Config{
				Region:      s3Region,
				Credentials: credentials.NewStaticCredentialsProvider(s3Key, s3Secret, ""),
			}, func(o *s3.Options) {
				o.BaseEndpoint = aws.String(endpoint)
				o.UsePathStyle = true
			})
			return s3blob.OpenBucket(ctx, client, name, nil)
		},
	}
}

// s3Env gives the SDK static credentials and shuts out everything else it
// would consult: the developer's ~/.aws files and profile, endpoint
// overrides, and the EC2 metadata service (a network call).
func s3Env() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":           s3Key,
		"AWS_SECRET_ACCESS_KEY":       s3Secret,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  s3Region,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_PROFILE":                 "",
		"AWS_DEFAULT_PROFILE":         "",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_S3":         "",
	}
}
