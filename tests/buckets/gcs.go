package buckets

import (
	"context"
	"net/http/httptest"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"google.golang.org/api/option"
)

const gcsBucket = "connect-test"

// StartGCS serves an in-memory fake-gcs-server (the JSON API Cloud Storage
// clients speak) on 127.0.0.1 with one empty bucket; the server stops when
// the test ends, or at b.Stop.
//
// gocloud's gcsblob reaches it through STORAGE_EMULATOR_HOST=host:port (in
// b.Env): gs:// URLs then go to http://host:port/storage/v1/ without
// credentials, in this process (t.Setenv) or in a child's environment.
func StartGCS(t testing.TB) *Bucket {
	t.Helper()
	// The listener comes first: fake-gcs-server answers resumable uploads
	// with its own address, which must then be the served one.
	srv := httptest.NewUnstartedServer(nil)
	host := srv.Listener.Addr().String()
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener:  true,
		Scheme:      "http",
		ExternalURL: "http://" + host,
		PublicHost:  host,
	})
	if err != nil {
		t.Fatalf("fake-gcs-server: %v", err)
	}
	fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: gcsBucket})
	srv.Config.Handler = fake.HTTPHandler()
	srv.Start()
	stop := func() {
		// As for S3: drop connections first, a reader may be left open.
		srv.CloseClientConnections()
		srv.Close()
	}
	t.Cleanup(stop)
	return &Bucket{
		URL:  "gs://" + gcsBucket,
		Env:  map[string]string{"STORAGE_EMULATOR_HOST": host},
		Name: gcsBucket,
		Stop: stop,
		open: func(ctx context.Context) (*blob.Bucket, error) {
			client, err := storage.NewClient(ctx, option.WithoutAuthentication(),
				option.WithEndpoint("http://"+host+"/storage/v1/"))
			if err != nil {
				return nil, err
			}
			return gcsblob.OpenBucket(ctx, nil, gcsBucket, &gcsblob.Options{Client: client})
		},
	}
}
