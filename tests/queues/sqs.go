package queues

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/currents-connect/currents-connect/tests/npminstall"
	"github.com/currents-connect/currents-connect/tests/serverproc"
)

// The emulator's account and region, as its ARNs and queue URLs carry them.
const (
	sqsAccount = "000000000000"
	sqsRegion  = "us-east-1"
)

var sqsListening = regexp.MustCompile(`^listening (http://\S+)$`)

// SQS is an Amazon SQS and SNS emulator (fauxqs, from npm, installed into
// tests/queues/node_modules on first use) in a process of its own on
// loopback, speaking the JSON protocol of the AWS SDK the awssnssqs driver
// uses. Clients reach it through the endpoint in the URLs it gives, with
// the credentials of Env (it checks none).
type SQS struct {
	Endpoint string // http://127.0.0.1:<port>
	sqs      *sqs.Client
	sns      *sns.Client
}

// StartSQS starts the emulator, killed when the test ends.
func StartSQS(t testing.TB) *SQS {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	npminstall.Install(t, dir, "fauxqs (the SQS emulator)")
	cmd := exec.Command("node", filepath.Join(dir, "sqs-server.mjs"))
	cmd.Dir = dir
	endpoint := serverproc.StartServer(t, cmd, sqsListening, time.Minute)
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	return &SQS{
		Endpoint: endpoint,
		sqs:      sqs.New(sqs.Options{Region: sqsRegion, BaseEndpoint: aws.String(endpoint), Credentials: creds}),
		sns:      sns.New(sns.Options{Region: sqsRegion, BaseEndpoint: aws.String(endpoint), Credentials: creds}),
	}
}

// Env is the environment a process needs to reach the emulator through the
// AWS default credential chain without looking for an instance role.
func (s *SQS) Env() map[string]string {
	return map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"AWS_REGION": sqsRegion, "AWS_EC2_METADATA_DISABLED": "true"}
}

// SetEnv sets Env for this process until the test ends.
func (s *SQS) SetEnv(t testing.TB) {
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
}

// CreateQueue creates the queue name with attributes (VisibilityTimeout,
// MaximumMessageSize...) and returns its awssqs:// URL.
func (s *SQS) CreateQueue(t testing.TB, name string, attributes map[string]string) string {
	t.Helper()
	if _, err := s.sqs.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attributes}); err != nil {
		t.Fatalf("creating SQS queue %s: %v", name, err)
	}
	return s.QueueURL(name)
}

// QueueURL is the awssqs:// URL of the queue name, as a user would write it
// for SQS, with the emulator's endpoint.
func (s *SQS) QueueURL(name string) string { return s.QueueURLVia(name, s.Endpoint) }

// QueueURLVia is QueueURL through endpoint, a front before the emulator.
func (s *SQS) QueueURLVia(name, endpoint string) string {
	return "awssqs://" + queuePath(name) + "?" + params(endpoint)
}

// queuePath is the host and path of the queue name's URL on SQS.
func queuePath(name string) string {
	return "sqs." + sqsRegion + ".amazonaws.com/" + sqsAccount + "/" + name
}

func params(endpoint string) string {
	return url.Values{"region": {sqsRegion}, "endpoint": {endpoint}}.Encode()
}

func (s *SQS) queueURL(name string) *string {
	return aws.String("https://" + queuePath(name))
}

// Send sends body to the queue name with attrs as string message
// attributes.
func (s *SQS) Send(t testing.TB, name string, body []byte, attrs map[string]string) {
	t.Helper()
	in := &sqs.SendMessageInput{QueueUrl: s.queueURL(name), MessageBody: aws.String(string(body))}
	if len(attrs) > 0 {
		in.MessageAttributes = map[string]sqstypes.MessageAttributeValue{}
		for k, v := range attrs {
			in.MessageAttributes[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
	}
	if _, err := s.sqs.SendMessage(context.Background(), in); err != nil {
		t.Fatalf("sending to SQS queue %s: %v", name, err)
	}
}

// Count is how many messages the queue name holds: visible, and received
// but neither deleted nor back yet (in flight).
func (s *SQS) Count(t testing.TB, name string) (visible, inFlight int) {
	t.Helper()
	out, err := s.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: s.queueURL(name),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatalf("counting SQS queue %s: %v", name, err)
	}
	visible, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	inFlight, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, inFlight
}

// CreateTopic creates the SNS topic name, delivering to each queue of
// queues (raw message delivery, or SNS's JSON envelope unless raw), and
// returns its awssns:// URL.
func (s *SQS) CreateTopic(t testing.TB, name string, raw bool, queues ...string) string {
	t.Helper()
	ctx := context.Background()
	out, err := s.sns.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("creating SNS topic %s: %v", name, err)
	}
	for _, q := range queues {
		in := &sns.SubscribeInput{TopicArn: out.TopicArn, Protocol: aws.String("sqs"),
			Endpoint: aws.String("arn:aws:sqs:" + sqsRegion + ":" + sqsAccount + ":" + q)}
		if raw {
			in.Attributes = map[string]string{"RawMessageDelivery": "true"}
		}
		if _, err := s.sns.Subscribe(ctx, in); err != nil {
			t.Fatalf("subscribing SQS queue %s to SNS topic %s: %v", q, name, err)
		}
	}
	return "awssns:///" + aws.ToString(out.TopicArn) + "?" + params(s.Endpoint)
}

// SQSMessage is a message a queue holds, as the emulator shows it.
type SQSMessage struct {
	Body string `json:"body"`
	// Received is how many times it was delivered (SQS's
	// ApproximateReceiveCount).
	Received int `json:"approximateReceiveCount"`
	// VisibleAt is when a message received comes back unless deleted or
	// its visibility changed; zero for one visible now.
	VisibleAt time.Time `json:"-"`
}

// Messages are the messages the queue name holds: visible, delayed, and
// received but neither deleted nor back yet.
func (s *SQS) Messages(t testing.TB, name string) []SQSMessage {
	t.Helper()
	res, err := http.Get(s.Endpoint + "/_fauxqs/queues/" + url.PathEscape(name))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var q struct {
		Messages struct {
			Ready, Delayed []SQSMessage
			Inflight       []struct {
				Message            SQSMessage
				VisibilityDeadline int64 // ms since the epoch
			}
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&q); err != nil {
		t.Fatalf("inspecting SQS queue %s: %s, %v", name, res.Status, err)
	}
	all := append(q.Messages.Ready, q.Messages.Delayed...)
	for _, m := range q.Messages.Inflight {
		m.Message.VisibleAt = time.UnixMilli(m.VisibilityDeadline)
		all = append(all, m.Message)
	}
	return all
}

// Deliveries is how many times the queue name delivered the message with
// body data that it still holds; 0 once the message is deleted.
func (s *SQS) Deliveries(t testing.TB, name string, data []byte) int {
	t.Helper()
	n := 0
	for _, m := range s.Messages(t, name) {
		if m.Body == string(data) {
			n += m.Received
		}
	}
	return n
}

// Publish publishes body to the SNS topic name, as S3 or another AWS
// service would.
func (s *SQS) Publish(t testing.TB, topic string, body []byte) {
	t.Helper()
	arn := "arn:aws:sns:" + sqsRegion + ":" + sqsAccount + ":" + topic
	if _, err := s.sns.Publish(context.Background(), &sns.PublishInput{TopicArn: aws.String(arn), Message: aws.String(string(body))}); err != nil {
		t.Fatalf("publishing to SNS topic %s: %v", topic, err)
	}
}

// DeleteQueue deletes the queue name and what it holds.
func (s *SQS) DeleteQueue(t testing.TB, name string) {
	t.Helper()
	// The emulator deletes a queue by the URL it made only.
	ctx := context.Background()
	q, err := s.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("looking up SQS queue %s: %v", name, err)
	}
	if _, err := s.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl}); err != nil {
		t.Fatalf("deleting SQS queue %s: %v", name, err)
	}
}
