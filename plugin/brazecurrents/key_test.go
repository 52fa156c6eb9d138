package brazecurrents

import (
	"testing"
	"time"
)

func TestParseObjectKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want ObjectKey
	}{
		{
			key: emailSendKey,
			want: ObjectKey{IntegrationID: "5a1b2c3d4e5f60718293a4b5", Cluster: "prod-01", Conn: "S3",
				EventType: "users.messages.email.Send", DateHour: "2026-11-01-10", Version: "3", Partition: "0", Offset: "0000000042"},
		},
		{
			// Older exports: /<schema_id>/<zone>/ instead of /version=<n>/<environment>/.
			key: "currents/dataexport.prod-03.GCS.integration.0123456789abcdef01234567/event_type=users.behaviors.Uninstall/date=2019-03-04-05/52/us-east-1/dataexport.prod-03.GCS.integration.0123456789abcdef01234567+1+0000000007.avro",
			want: ObjectKey{IntegrationID: "0123456789abcdef01234567", Cluster: "prod-03", Conn: "GCS",
				EventType: "users.behaviors.Uninstall", DateHour: "2019-03-04-05", Partition: "1", Offset: "0000000007"},
		},
		{
			// Very old file names lack the cluster.
			key: "exports/dataexport.S3.integration.aaaaaaaaaaaaaaaaaaaaaaaa/event_type=users.messages.pushnotification.Send/date=2018-01-02-03/dataexport.S3.integration.aaaaaaaaaaaaaaaaaaaaaaaa+2+0000035465.avro",
			want: ObjectKey{IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Conn: "S3",
				EventType: "users.messages.pushnotification.Send", DateHour: "2018-01-02-03", Partition: "2", Offset: "0000035465"},
		},
		{key: "some/file.avro", want: ObjectKey{}},
	} {
		if got := ParseObjectKey(tc.key); got != tc.want {
			t.Errorf("ParseObjectKey(%q)\n got %+v\nwant %+v", tc.key, got, tc.want)
		}
	}
}

func TestObjectKeyHour(t *testing.T) {
	hour, ok := ParseObjectKey(emailSendKey).Hour()
	if !ok || !hour.Equal(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("hour %v %v", hour, ok)
	}
	if _, ok := (ObjectKey{DateHour: "2026-13-01-10"}).Hour(); ok {
		t.Fatal("invalid date= accepted")
	}
}
