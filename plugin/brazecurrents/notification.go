package brazecurrents

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// objectRef names an object a notification says was created.
type objectRef struct {
	bucket, key string
}

// notice is what one queue message says: the objects created, or why it
// names none (a test event, a deletion).
type notice struct {
	objects []objectRef
	skip    string
	warn    string // a message naming none that an operator must act on
}

// errNotNotification is a message that is none of the formats known here.
var errNotNotification = errors.New("not an S3, GCS or Azure Event Grid object notification")

// maxNoticeDepth bounds the envelopes unwrapped (SNS around S3, an array
// around Event Grid events): real ones nest once.
const maxNoticeDepth = 3

// parseNotification reads an object-created notification of any cloud from
// a queue message's body and attributes (metadata).
func parseNotification(body []byte, attrs map[string]string) (notice, error) {
	if _, isGCS := attrs["bucketId"]; isGCS {
		return parseGCSNotice(attrs)
	}
	return parseNoticeBody(body, 0)
}

// parseGCSNotice reads a Cloud Storage Pub/Sub notification: everything is
// in the attributes, the body (the object resource) is not needed.
func parseGCSNotice(attrs map[string]string) (notice, error) {
	bucket, key, event := attrs["bucketId"], attrs["objectId"], attrs["eventType"]
	if event != "OBJECT_FINALIZE" {
		return notice{skip: "GCS " + event}, nil
	}
	if bucket == "" || key == "" {
		return notice{}, errors.New("GCS OBJECT_FINALIZE notification without bucketId or objectId")
	}
	return notice{objects: []objectRef{{bucket, key}}}, nil
}

// rawNotice holds the fields of every JSON format; which are set says which
// one a message is. Field names differ in more than case, except Type (SNS)
// and type (CloudEvents), which encoding/json tells apart by exact match.
type rawNotice struct {
	Type       string          `json:"Type"`     // SNS
	Message    *string         `json:"Message"`  // SNS: the S3 notification, as a string
	TopicArn   string          `json:"TopicArn"` // SNS
	Records    []s3Record      `json:"Records"`
	Event      string          `json:"Event"` // s3:TestEvent
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Detail     *bucketObject   `json:"detail"`
	EventType  string          `json:"eventType"` // Event Grid schema
	CEType     string          `json:"type"`      // CloudEvents schema
	Subject    string          `json:"subject"`
	Data       json.RawMessage `json:"data"`
}

type s3Record struct {
	EventSource string       `json:"eventSource"`
	EventName   string       `json:"eventName"`
	S3          bucketObject `json:"s3"`
}

// bucketObject is how S3 and EventBridge both name an object.
type bucketObject struct {
	Bucket struct {
		Name string `json:"name"`
	} `json:"bucket"`
	Object struct {
		Key string `json:"key"`
	} `json:"object"`
}

func parseNoticeBody(body []byte, depth int) (notice, error) {
	body = bytes.TrimSpace(body)
	if depth > maxNoticeDepth {
		return notice{}, errors.New("notification nested too deep")
	}
	if len(body) > 0 && body[0] == '[' {
		return parseNoticeArray(body, depth)
	}
	var r rawNotice
	if err := json.Unmarshal(body, &r); err != nil {
		return notice{}, fmt.Errorf("%w: %v", errNotNotification, err)
	}
	switch {
	case r.Type == "Notification" && r.Message != nil:
		return parseNoticeBody([]byte(*r.Message), depth+1)
	case r.Type == "SubscriptionConfirmation" || r.Type == "UnsubscribeConfirmation":
		return snsControl(r.Type, r.TopicArn), nil
	case r.Event == "s3:TestEvent":
		return notice{skip: "s3:TestEvent"}, nil
	case r.Records != nil:
		return parseS3Records(r.Records)
	case r.Source == "aws.s3":
		return parseBridgeEvent(r)
	case strings.HasPrefix(r.EventType, "Microsoft."):
		return parseGridEvent(r.EventType, r.Subject, r.Data)
	case strings.HasPrefix(r.CEType, "Microsoft."):
		return parseGridEvent(r.CEType, r.Subject, r.Data)
	}
	return notice{}, errNotNotification
}

// snsControl is an SNS message about the queue's subscription itself. A
// SubscriptionConfirmation comes when a topic of another account subscribed
// the queue: until confirmed, none of the topic's notifications arrive,
// which nothing else would tell. Its token is not logged.
func snsControl(kind, topic string) notice {
	n := notice{skip: "SNS " + kind}
	if kind == "SubscriptionConfirmation" {
		n.warn = fmt.Sprintf("SNS topic %s asks to confirm this queue's subscription to it: until it is confirmed, none of the topic's notifications reach the queue. "+
			"Subscribe the queue from the queue's own AWS account (a subscription made there needs no confirmation), or stop the input and confirm it with the Token "+
			"of a confirmation message from the queue (the SNS console's Request confirmation sends another); this one is acknowledged, its token not logged", topic)
	} else {
		n.warn = fmt.Sprintf("SNS topic %s confirms that this queue's subscription to it was deleted: none of the topic's notifications reach the queue any more", topic)
	}
	return n
}

// parseNoticeArray reads a batch of events (Event Grid may deliver several
// in one message): the objects of all, skipped only if none names one.
func parseNoticeArray(body []byte, depth int) (notice, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return notice{}, fmt.Errorf("%w: %v", errNotNotification, err)
	}
	var out notice
	var skips []string
	for _, item := range items {
		n, err := parseNoticeBody(item, depth+1)
		if err != nil {
			return notice{}, err
		}
		out.objects = append(out.objects, n.objects...)
		if n.skip != "" {
			skips = append(skips, n.skip)
		}
	}
	if len(out.objects) == 0 {
		out.skip = strings.Join(skips, ", ")
		if out.skip == "" {
			out.skip = "no events"
		}
	}
	return out, nil
}

// parseS3Records reads an S3 event notification. Keys are URL-encoded,
// with + for a space, as in a query. S3-compatible stores send the same
// records from sources of their own, MinIO (to AMQP or NATS) as minio:s3,
// its event names prefixed with s3: (s3:ObjectCreated:Put).
func parseS3Records(records []s3Record) (notice, error) {
	var out notice
	var skips []string
	for _, r := range records {
		if !strings.HasSuffix(r.EventSource, ":s3") {
			return notice{}, fmt.Errorf("S3 record from %q, not aws:s3 (or another store's :s3)", r.EventSource)
		}
		if !strings.HasPrefix(strings.TrimPrefix(r.EventName, "s3:"), "ObjectCreated:") {
			skips = append(skips, "S3 "+r.EventName)
			continue
		}
		key, err := url.QueryUnescape(r.S3.Object.Key)
		if err != nil {
			return notice{}, fmt.Errorf("S3 object key %q: %v", r.S3.Object.Key, err)
		}
		if r.S3.Bucket.Name == "" || key == "" {
			return notice{}, errors.New("S3 ObjectCreated record without bucket name or object key")
		}
		out.objects = append(out.objects, objectRef{r.S3.Bucket.Name, key})
	}
	if len(out.objects) == 0 {
		out.skip = strings.Join(skips, ", ")
		if out.skip == "" {
			out.skip = "S3 notification without records"
		}
	}
	return out, nil
}

// parseBridgeEvent reads an S3 event delivered by EventBridge. Whether its
// keys are URL-encoded as S3's notifications are is not documented (AWS's
// Powertools decodes them), and either reading of the other form loses every
// Currents object: decoded, a key as it is turns its + into spaces; kept, an
// encoded one names event_type%3D…. An encoded Currents key always holds a
// % escape (of its =), and one as it is never a %, so only a key with a %
// is decoded (one that does not decode is taken as it is).
func parseBridgeEvent(r rawNotice) (notice, error) {
	if r.DetailType != "Object Created" {
		return notice{skip: "EventBridge " + r.DetailType}, nil
	}
	if r.Detail == nil || r.Detail.Bucket.Name == "" || r.Detail.Object.Key == "" {
		return notice{}, errors.New("EventBridge Object Created event without bucket name or object key")
	}
	key := r.Detail.Object.Key
	if decoded, err := url.QueryUnescape(key); err == nil && strings.Contains(key, "%") {
		key = decoded
	}
	return notice{objects: []objectRef{{r.Detail.Bucket.Name, key}}}, nil
}

// blobSubject is how an Event Grid subject of Blob Storage starts, before
// "<container>/blobs/<blob path>".
const blobSubject = "/blobServices/default/containers/"

// uncommittedAPIs are the operations whose BlobCreated comes before the
// file holds its data, on accounts with a hierarchical namespace: Data Lake's
// CreateFile and SFTP's SftpCreate make it empty, and another BlobCreated
// (FlushWithClose, SftpCommit) follows once it is written. Read at the
// first, an object was empty (or partly flushed) and done, and the second
// notification, arriving during that read, was settled with it.
var uncommittedAPIs = map[string]bool{"CreateFile": true, "SftpCreate": true}

// parseGridEvent reads an Event Grid event, in its own schema or as a
// CloudEvent: the container and blob come from the subject, or else from
// data.url.
func parseGridEvent(eventType, subject string, data json.RawMessage) (notice, error) {
	if eventType != "Microsoft.Storage.BlobCreated" {
		return notice{skip: eventType}, nil
	}
	var d struct {
		API string `json:"api"`
		URL string `json:"url"`
	}
	if len(data) > 0 {
		_ = json.Unmarshal(data, &d)
	}
	if uncommittedAPIs[d.API] {
		return notice{skip: eventType + " by " + d.API}, nil
	}
	if rest, ok := strings.CutPrefix(subject, blobSubject); ok {
		if container, blob, ok := strings.Cut(rest, "/blobs/"); ok && container != "" && blob != "" {
			return notice{objects: []objectRef{{container, blob}}}, nil
		}
	}
	if u, err := url.Parse(d.URL); err == nil && d.URL != "" {
		container, blob, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if container != "" && blob != "" {
			return notice{objects: []objectRef{{container, blob}}}, nil
		}
	}
	return notice{}, fmt.Errorf("BlobCreated event whose subject %q and data.url %q name no blob", subject, d.URL)
}
