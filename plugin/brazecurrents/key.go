package brazecurrents

import (
	"strings"
	"time"
)

// DateHourLayout is the time layout of a key's date= partition: the UTC hour
// in which Braze queued the events (not the events' own time).
const DateHourLayout = "2006-01-02-15"

// ObjectKey is what a Currents object key says about the file it names.
// Braze warns that the layout may change, so parsing is by recognisable
// segments (event_type=, date=, version=, dataexport.…integration.<id>),
// never by depth, and every part is optional.
//
//	<prefix>/dataexport.<cluster>.<conn>.integration.<id>/event_type=<type>/date=<YYYY-MM-DD-HH>/version=<n>/<env>/dataexport.<cluster>.<conn>.integration.<id>+<partition>+<offset>.avro
type ObjectKey struct {
	IntegrationID string // 24-hex Braze integration id
	Cluster       string // e.g. prod-01; empty in very old file names
	Conn          string // S3, GCS or AzureBlob
	EventType     string // e.g. users.messages.email.Send
	DateHour      string // e.g. 2026-11-01-10
	Version       string // the version= partition; empty in older layouts
	Partition     string
	Offset        string
}

// ParseObjectKey reads the parts of a Currents object key (or file path).
func ParseObjectKey(key string) ObjectKey {
	var k ObjectKey
	for _, seg := range strings.Split(key, "/") {
		switch {
		case strings.HasPrefix(seg, "event_type="):
			k.EventType = strings.TrimPrefix(seg, "event_type=")
		case strings.HasPrefix(seg, "date="):
			k.DateHour = strings.TrimPrefix(seg, "date=")
		case strings.HasPrefix(seg, "version="):
			k.Version = strings.TrimPrefix(seg, "version=")
		case strings.HasPrefix(seg, "dataexport."):
			k.parseExportName(seg)
		}
	}
	return k
}

// parseExportName reads dataexport.<cluster>.<conn>.integration.<id>, with
// an optional +<partition>+<offset>.avro suffix on file names.
func (k *ObjectKey) parseExportName(seg string) {
	head, id, ok := strings.Cut(seg, ".integration.")
	if !ok {
		return
	}
	if name, suffix, isFile := strings.Cut(id, "+"); isFile {
		id = name
		part, offset, _ := strings.Cut(strings.TrimSuffix(suffix, ".avro"), "+")
		k.Partition, k.Offset = part, offset
	}
	k.IntegrationID = id
	parts := strings.Split(strings.TrimPrefix(head, "dataexport."), ".")
	k.Conn = parts[len(parts)-1]
	if len(parts) > 1 {
		k.Cluster = strings.Join(parts[:len(parts)-1], ".")
	}
}

// Hour is the key's date= partition as a UTC time, if it has a valid one.
func (k ObjectKey) Hour() (time.Time, bool) {
	t, err := time.Parse(DateHourLayout, k.DateHour)
	return t, err == nil
}
