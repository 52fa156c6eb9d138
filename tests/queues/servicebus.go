package queues

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/currents-connect/currents-connect/tests/npminstall"
	"github.com/currents-connect/currents-connect/tests/serverproc"
)

var serviceBusListening = regexp.MustCompile(`^listening (amqp://\S+ http://\S+)$`)

// ServiceBus is a fake of Azure Service Bus (servicebus-server.mjs, on the
// AMQP 1.0 library rhea from npm, installed into tests/queues/node_modules
// on first use) in a process of its own on loopback. It speaks the AMQP
// contract of the azservicebus SDK, and so of gocloud's azuresb driver,
// reached through ConnectionString: topics fanning out to subscriptions,
// peek-lock receiving with locks that expire and renew, completion,
// abandon, release and dead-lettering. Entities are created, and their
// messages inspected, through an HTTP API of its own.
type ServiceBus struct {
	Endpoint string // sb://127.0.0.1:<port>, the AMQP listener
	Admin    string // http://127.0.0.1:<port>, the HTTP API

	mu    sync.Mutex
	names int // handed out by Name
}

// StartServiceBus starts the fake, killed when the test ends. gocloud's
// azuresb URL opener reads SERVICEBUS_CONNECTION_STRING once per process:
// tests that open azuresb:// URLs share a SharedServiceBus instead.
func StartServiceBus(t testing.TB) *ServiceBus {
	t.Helper()
	cmd, stdin := serviceBusCmd(t)
	urls := serverproc.StartServer(t, cmd, serviceBusListening, time.Minute)
	t.Cleanup(func() { stdin.Close() })
	return newServiceBus(urls)
}

// serviceBusCmd is the fake's command, its stdin a pipe whose write end the
// caller holds: the fake exits when it closes, so that a test binary that
// dies without its cleanups (or a SharedServiceBus never closed) leaves no
// server behind.
func serviceBusCmd(t testing.TB) (*exec.Cmd, *os.File) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	npminstall.Install(t, dir, "rhea (for the Service Bus fake)")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(dir, "servicebus-server.mjs"))
	cmd.Dir = dir
	cmd.Stdin = r
	// The child has its own copy once started; a start that fails has
	// failed the test.
	t.Cleanup(func() { r.Close() })
	return cmd, w
}

func newServiceBus(urls string) *ServiceBus {
	amqpURL, admin, _ := strings.Cut(urls, " ")
	return &ServiceBus{Endpoint: "sb://" + strings.TrimPrefix(amqpURL, "amqp://"), Admin: admin}
}

// SharedServiceBus is one fake for the tests of a package: the first test
// that needs it starts it, and it lives until Close or the test binary's
// end. Tests that share it use topics of their own (Name).
type SharedServiceBus struct {
	once  sync.Once
	sb    *ServiceBus
	cmd   *exec.Cmd
	stdin *os.File
	logs  serverproc.SyncBuffer
	err   error
}

// Get starts the fake on first use and returns it; a test that fails logs
// what the fake wrote.
func (s *SharedServiceBus) Get(t testing.TB) *ServiceBus {
	t.Helper()
	s.once.Do(func() {
		s.err = errors.New("the Service Bus fake failed to start in an earlier test")
		s.cmd, s.stdin = serviceBusCmd(t)
		var urls string
		urls, s.err = serverproc.Start(s.cmd, serviceBusListening, time.Minute, &s.logs)
		s.sb = newServiceBus(urls)
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	t.Cleanup(func() { serverproc.ReportIfFailed(t, s.cmd, &s.logs) })
	return s.sb
}

// Close stops the fake, if a test started it.
func (s *SharedServiceBus) Close() {
	if s.cmd != nil {
		serverproc.Kill(s.cmd)
		s.stdin.Close()
	}
}

// ConnectionString is a Service Bus connection string for the fake. Its
// UseDevelopmentEmulator=true makes azservicebus speak AMQP without TLS;
// the fake accepts any key.
func (s *ServiceBus) ConnectionString() string {
	return "Endpoint=" + s.Endpoint + ";SharedAccessKeyName=test;SharedAccessKey=dGVzdA==;UseDevelopmentEmulator=true"
}

// Env is the environment gocloud's azuresb driver reads.
func (s *ServiceBus) Env() map[string]string {
	return map[string]string{"SERVICEBUS_CONNECTION_STRING": s.ConnectionString()}
}

// SetEnv sets Env for this process until the test ends.
func (s *ServiceBus) SetEnv(t testing.TB) {
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
}

// TopicURL is the gocloud.dev/pubsub URL that sends to topic.
func (s *ServiceBus) TopicURL(topic string) string { return "azuresb://" + topic }

// SubscriptionURL is the gocloud.dev/pubsub URL that receives from the
// subscription sub of topic.
func (s *ServiceBus) SubscriptionURL(topic, sub string) string {
	return "azuresb://" + topic + "?" + url.Values{"subscription": {sub}}.Encode()
}

// Name is a topic name of t's own on this fake, for a shared one: t's name
// and a count, so that a test run again (go test -count) finds a fresh one.
func (s *ServiceBus) Name(t testing.TB) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names++
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), s.names)
}

// Client is an azservicebus client of the fake, closed when the test ends.
func (s *ServiceBus) Client(t testing.TB) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(s.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(t.Context()) })
	return c
}

// CreateTopic creates topic, if it does not exist. A message sent to a
// topic without subscriptions is dropped, as Service Bus does.
func (s *ServiceBus) CreateTopic(t testing.TB, topic string) {
	t.Helper()
	s.call(t, http.MethodPut, "/topics/"+url.PathEscape(topic), nil, nil)
}

// CreateSubscription creates the subscription sub of topic (and topic),
// or sets its lock duration (how long a received message stays locked
// unless renewed; 60 s if 0) and maxDeliveryCount (deliveries after which
// it is dead-lettered; 10 if 0). It holds what is sent to topic from then.
func (s *ServiceBus) CreateSubscription(t testing.TB, topic, sub string, lockDuration time.Duration, maxDeliveryCount int) {
	t.Helper()
	q := url.Values{}
	if lockDuration > 0 {
		q.Set("lockDurationMs", fmt.Sprint(lockDuration.Milliseconds()))
	}
	if maxDeliveryCount > 0 {
		q.Set("maxDeliveryCount", fmt.Sprint(maxDeliveryCount))
	}
	s.call(t, http.MethodPut, "/topics/"+url.PathEscape(topic)+"/subscriptions/"+url.PathEscape(sub)+"?"+q.Encode(), nil, nil)
}

// Send sends body to topic as one data section, with a message ID and no
// application properties, as Event Grid or another service would.
func (s *ServiceBus) Send(t testing.TB, topic string, body []byte) {
	t.Helper()
	s.call(t, http.MethodPost, "/topics/"+url.PathEscape(topic)+"/messages", body, nil)
}

// DetachReceivers detaches the links that receive from the subscription
// sub of topic (amqp:link:detach-forced), as Service Bus does to idle or
// moved links: the locks they took stay, settled then through the
// subscription's $management node, and the SDK attaches again.
func (s *ServiceBus) DetachReceivers(t testing.TB, topic, sub string) {
	t.Helper()
	s.call(t, http.MethodPost, "/topics/"+url.PathEscape(topic)+"/subscriptions/"+url.PathEscape(sub)+"/detach", nil, nil)
}

// The states of an SBMessage.
const (
	SBAvailable    = "available"    // waits for a receiver
	SBLocked       = "locked"       // received, neither settled nor back yet
	SBDeferred     = "deferred"     // deferred (received again by sequence number only: not in the fake)
	SBDeadLettered = "deadlettered" // in the subscription's dead-letter queue
)

// SBMessage is a message a subscription holds, as the fake shows it.
type SBMessage struct {
	SequenceNumber int64
	Body           string // the data section(s) as text
	State          string // SBAvailable, SBLocked...
	// DeliveryCount is the deliveries that ended without settlement
	// (abandoned, or lock expired), the AMQP header's count: the SDK's
	// ReceivedMessage.DeliveryCount of the next delivery is one more.
	DeliveryCount int
	LockedUntil   time.Time // zero unless SBLocked
	// LockToken is the current lock's, as azservicebus's
	// ReceivedMessage.LockToken in UUID form; "" unless SBLocked.
	LockToken        string
	Properties       map[string]any // application properties
	DeadLetterReason string
}

// Messages are what the subscription sub of topic holds: available, locked,
// deferred, and then its dead-letter queue; a lock whose time is up has
// ended first.
func (s *ServiceBus) Messages(t testing.TB, topic, sub string) []SBMessage {
	t.Helper()
	var out struct {
		Messages []struct {
			SBMessage
			LockedUntil           *int64 // ms since the epoch
			ApplicationProperties map[string]any
		}
	}
	s.call(t, http.MethodGet, "/topics/"+url.PathEscape(topic)+"/subscriptions/"+url.PathEscape(sub), nil, &out)
	ms := make([]SBMessage, 0, len(out.Messages))
	for _, m := range out.Messages {
		if m.LockedUntil != nil {
			m.SBMessage.LockedUntil = time.UnixMilli(*m.LockedUntil)
		}
		m.Properties = m.ApplicationProperties
		ms = append(ms, m.SBMessage)
	}
	return ms
}

// SBStats count what the fake's clients did, since it started.
type SBStats struct {
	Deliveries  int // messages sent to receivers, each locked
	Completes   int // settled: accepted, or completed on $management
	Abandons    int // given back, delivery counted (modified, abandoned)
	Releases    int // given back uncounted: prefetched, not handed out (released)
	DeadLetters int // dead-lettered, by the client or past maxDeliveryCount
	Defers      int
	Expiries    int // locks that ended unsettled and unrenewed
	LockLost    int // settlements and renewals refused: lock expired or message gone
	// RenewCalls are com.microsoft:renew-lock requests that succeeded,
	// LocksRenewed the lock tokens they renewed.
	RenewCalls, LocksRenewed int
	// ManagementSettles are locks settled by update-disposition on
	// $management: what azservicebus does once the receiving link is gone.
	ManagementSettles int
	Detached          int // receiving links detached by DetachReceivers
	PutTokens         int // CBS put-token requests
}

// Stats are the fake's counters.
func (s *ServiceBus) Stats(t testing.TB) SBStats {
	t.Helper()
	var st SBStats
	s.call(t, http.MethodGet, "/stats", nil, &st)
	return st
}

// Renewals is how many locks the fake has renewed so far.
func (s *ServiceBus) Renewals(t testing.TB) int { return s.Stats(t).LocksRenewed }

func (s *ServiceBus) call(t testing.TB, method, path string, body []byte, out any) {
	t.Helper()
	req, err := http.NewRequest(method, s.Admin+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("Service Bus fake %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		t.Fatalf("Service Bus fake %s %s: %s %s", method, path, res.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("Service Bus fake %s %s: %v in %s", method, path, err, b)
		}
	}
}
