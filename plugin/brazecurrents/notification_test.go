package brazecurrents

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The fixtures in testdata/notifications are written by us after each
// cloud's documented format, one per format; name.attrs.json holds a
// message's attributes (GCS puts the event there).
const (
	fixtureKey   = "currents/dataexport.prod-03.S3.integration.5f0c2a9d8e7b6a5f4e3d2c1b/event_type=users.messages.email.Send/date=2026-11-02-14/version=2/prod-03/dataexport.prod-03.S3.integration.5f0c2a9d8e7b6a5f4e3d2c1b+0+1842.avro"
	fixtureGCS   = "currents/dataexport.prod-03.GCS.integration.5f0c2a9d8e7b6a5f4e3d2c1b/event_type=users.messages.email.Send/date=2026-11-02-14/version=2/prod-03/dataexport.prod-03.GCS.integration.5f0c2a9d8e7b6a5f4e3d2c1b+0+1842.avro"
	fixtureAzure = "dataexport.prod-03.AzureBlob.integration.5f0c2a9d8e7b6a5f4e3d2c1b/event_type=users.messages.email.Send/date=2026-11-02-14/version=2/prod-03/dataexport.prod-03.AzureBlob.integration.5f0c2a9d8e7b6a5f4e3d2c1b+0+1842.avro"
)

func noticeFixture(t testing.TB, name string) ([]byte, map[string]string) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", "notifications", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var attrs map[string]string
	if raw, err := os.ReadFile(filepath.Join("testdata", "notifications", name+".attrs.json")); err == nil {
		if err := json.Unmarshal(raw, &attrs); err != nil {
			t.Fatal(err)
		}
	}
	return body, attrs
}

func TestParseNotificationFormats(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		want    []objectRef
		skip    string
	}{
		{"s3_direct", []objectRef{{"acme-currents", fixtureKey}}, ""},
		{"s3_space_key", []objectRef{{"acme-currents", "currents/my folder/café 1.avro"}}, ""},
		{"s3_sns", []objectRef{{"acme-currents", fixtureKey}}, ""},
		{"s3_eventbridge", []objectRef{{"acme-currents", fixtureKey}}, ""},
		{"s3_test_event", nil, "s3:TestEvent"},
		{"s3_removed", nil, "S3 ObjectRemoved:Delete"},
		{"minio_put", []objectRef{{"acme-currents", fixtureKey}}, ""},
		{"gcs_finalize", []objectRef{{"acme-currents", fixtureGCS}}, ""},
		{"gcs_delete", nil, "GCS OBJECT_DELETE"},
		{"azure_eventgrid", []objectRef{{"currents", fixtureAzure}}, ""},
		{"azure_cloudevents", []objectRef{{"currents", fixtureAzure}}, ""},
		{"azure_deleted", nil, "Microsoft.Storage.BlobDeleted"},
		{"azure_createfile", nil, "Microsoft.Storage.BlobCreated by CreateFile"},
		{"sns_subscription_confirmation", nil, "SNS SubscriptionConfirmation"},
		{"sns_unsubscribe_confirmation", nil, "SNS UnsubscribeConfirmation"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			body, attrs := noticeFixture(t, tc.fixture)
			n, err := parseNotification(body, attrs)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(n.objects, tc.want) || n.skip != tc.skip {
				t.Fatalf("got %+v, want objects %+v, skip %q", n, tc.want, tc.skip)
			}
		})
	}
}

// Whether EventBridge escapes keys as S3's notifications do is undocumented
// (AWS's Powertools decodes them with unquote_plus): an escaped Currents key
// is decoded, one as it is (s3_eventbridge, with its + and =) kept.
func TestParseNotificationEventBridgeKeyEscaped(t *testing.T) {
	body, _ := noticeFixture(t, "s3_eventbridge")
	escaped := strings.Replace(string(body), `"key": "`+fixtureKey+`"`, `"key": "`+url.QueryEscape(fixtureKey)+`"`, 1)
	n, err := parseNotification([]byte(escaped), nil)
	if err != nil || !slices.Equal(n.objects, []objectRef{{"acme-currents", fixtureKey}}) {
		t.Fatalf("got %+v, %v", n, err)
	}
}

// Azure's data.url names the blob when the subject does not.
func TestParseNotificationAzureURLFallback(t *testing.T) {
	n, err := parseNotification([]byte(`{"eventType":"Microsoft.Storage.BlobCreated","subject":"","data":{"url":"https://a.blob.core.windows.net/c/x/y%20z.avro"}}`), nil)
	if err != nil || !slices.Equal(n.objects, []objectRef{{"c", "x/y z.avro"}}) {
		t.Fatalf("got %+v, %v", n, err)
	}
}

func TestParseNotificationRejectsMalformed(t *testing.T) {
	for name, body := range map[string]string{
		"empty":            "",
		"not JSON":         "hello",
		"unknown JSON":     `{"hello":"world"}`,
		"SNS of garbage":   `{"Type":"Notification","Message":"not json"}`,
		"bad S3 escaping":  `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a%zz"}}}]}`,
		"S3 without key":   `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{}}}]}`,
		"not from S3":      `{"Records":[{"eventSource":"aws:sqs"}]}`,
		"EventBridge bare": `{"source":"aws.s3","detail-type":"Object Created"}`,
		"blob unnamed":     `{"eventType":"Microsoft.Storage.BlobCreated","subject":"/x"}`,
		"deep":             strings.Repeat("[", 10) + strings.Repeat("]", 10),
	} {
		if n, err := parseNotification([]byte(body), nil); err == nil {
			t.Errorf("%s: accepted as %+v", name, n)
		}
	}
	if _, err := parseNotification(nil, map[string]string{"bucketId": "b", "eventType": "OBJECT_FINALIZE"}); err == nil {
		t.Error("GCS notification without objectId accepted")
	}
}

// FuzzParseNotification: any message either fails or names objects with a
// bucket and a key, or says why it names none; never both, never a panic.
func FuzzParseNotification(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "notifications"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if name := strings.TrimSuffix(e.Name(), ".json"); !strings.HasSuffix(name, ".attrs") {
			body, attrs := noticeFixture(f, name)
			f.Add(body, attrs["bucketId"], attrs["objectId"], attrs["eventType"])
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, bucket, key, event string) {
		var attrs map[string]string
		if bucket != "" {
			attrs = map[string]string{"bucketId": bucket, "objectId": key, "eventType": event}
		}
		n, err := parseNotification(body, attrs)
		if err != nil {
			return
		}
		if (len(n.objects) == 0) == (n.skip == "") {
			t.Fatalf("objects %+v and skip %q", n.objects, n.skip)
		}
		for _, o := range n.objects {
			if o.bucket == "" || o.key == "" {
				t.Fatalf("object without bucket or key: %+v", o)
			}
		}
	})
}
