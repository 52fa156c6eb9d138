package queues

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitStartLimit bounds a broker's start: 6 to 14 s on a 2-core machine
// shared with other work, a first start (a new database) included.
const rabbitStartLimit = 2 * time.Minute

// Rabbit is a RabbitMQ broker (Debian's rabbitmq-server) in processes of
// its own on 127.0.0.1, with its database in a temporary directory and its
// own epmd: it shares nothing with a broker installed on the machine.
// Processes reach it through RABBIT_SERVER_URL (the rabbit scheme's
// driver), as user guest, whom RabbitMQ lets in from loopback only. It
// refuses messages over 1 MiB (max_message_size).
type Rabbit struct {
	Port       int    // AMQP
	node       string // Erlang's name for it
	dir        string
	env        []string
	epmd       *exec.Cmd
	broker     *exec.Cmd
	exited     chan struct{} // closed once broker exited
	brokerLogs string

	mu      sync.Mutex
	pubConn *amqp.Connection // Publish's own
	pub     *amqp.Channel    // on pubConn, in confirm mode
	pubGone chan *amqp.Error // why pub closed
}

// RabbitConfig is configuration a test's broker adds to the harness's own.
type RabbitConfig struct {
	// Conf is lines added to rabbitmq.conf, such as "consumer_timeout = 2000".
	Conf string
	// Advanced is advanced.config's content, for what rabbitmq.conf cannot
	// set, such as "[{rabbit, [{channel_tick_interval, 500}]}]."
	Advanced string
}

// ShortConsumerTimeout is a broker whose consumer_timeout is 2 s (30
// minutes by default), checked every 0.5 s: RabbitMQ checks it on each
// channel's tick, channel_tick_interval, 60 s by default. A delivery
// unacknowledged for longer closes its channel, and the broker puts back
// every message the channel held.
var ShortConsumerTimeout = RabbitConfig{
	Conf:     "consumer_timeout = 2000\n",
	Advanced: "[{rabbit, [{channel_tick_interval, 500}]}].\n",
}

// StartRabbit starts a broker for one test, stopped when the test ends.
func StartRabbit(t testing.TB) *Rabbit {
	t.Helper()
	return StartRabbitWith(t, RabbitConfig{})
}

// StartRabbitWith starts a broker as StartRabbit does, with conf added.
func StartRabbitWith(t testing.TB, conf RabbitConfig) *Rabbit {
	t.Helper()
	if err := installRabbit(t.Logf); err != nil {
		t.Fatal(err)
	}
	r, err := NewRabbitWith(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	r.logIfFailed(t) // before the close: cleanups run last first
	return r
}

// logIfFailed has t log what the broker wrote if t fails.
func (r *Rabbit) logIfFailed(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("RabbitMQ wrote:\n%s", r.Logs())
		}
	})
}

// NewRabbitWith starts a broker with conf added to the harness's
// configuration, for a whole test binary (SharedRabbit): gocloud's rabbit
// driver keeps one connection per process, dialled from RABBIT_SERVER_URL.
// It installs rabbitmq-server first if needed (installRabbit); the caller
// stops the broker with Close.
func NewRabbitWith(conf RabbitConfig) (*Rabbit, error) {
	if err := installRabbit(func(string, ...any) {}); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rabbitmq-test-")
	if err != nil {
		return nil, err
	}
	r := &Rabbit{Port: ports[0], node: "connect-test-" + strconv.Itoa(ports[0]) + "@localhost",
		dir: dir, brokerLogs: filepath.Join(dir, "broker.log")}
	// Every path and port the broker uses is here: nothing of /etc/rabbitmq
	// or /var/lib/rabbitmq, no plugins (the management plugin is the
	// package's default), its own Erlang cookie (HOME).
	r.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(dir, "rabbitmq"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE=" + filepath.Join(dir, "rabbitmq.pid"),
		"RABBITMQ_LOGS=-", // to broker.log, through stdout
		"RABBITMQ_NODENAME=" + r.node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(ports[0]),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(ports[1]),
		"ERL_EPMD_PORT=" + strconv.Itoa(ports[2]),
		// The epmd started below, or none: never a daemon left behind.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false",
	}
	for name, content := range map[string]string{
		"enabled_plugins": "[].\n",
		// As NATS's maximum payload: a message the broker refuses.
		"rabbitmq.conf":   "max_message_size = 1048576\n" + conf.Conf,
		"advanced.config": cmp.Or(conf.Advanced, "[].\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, errors.Join(err, os.RemoveAll(dir))
		}
	}
	r.epmd = exec.Command("epmd", "-port", strconv.Itoa(ports[2]))
	if err := r.epmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("start epmd: %w", err), os.RemoveAll(dir))
	}
	if err := r.start(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// start runs the broker and waits until it answers on its AMQP port.
func (r *Rabbit) start() error {
	logs, err := os.OpenFile(r.brokerLogs, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logs.Close() // the broker has its own copy
	r.broker = exec.Command(rabbitServer)
	r.broker.Env = r.env
	r.broker.Dir = r.dir
	r.broker.Stdout, r.broker.Stderr = logs, logs
	// Its own process group: the script, the Erlang VM and its helpers are
	// killed together.
	r.broker.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.broker.Start(); err != nil {
		return fmt.Errorf("start %s: %w", rabbitServer, err)
	}
	exited := make(chan struct{})
	r.exited = exited
	go func(cmd *exec.Cmd) {
		_ = cmd.Wait()
		close(exited)
	}(r.broker)

	deadline := time.NewTimer(rabbitStartLimit)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		conn, err := amqp.Dial(r.URL())
		if err == nil {
			return conn.Close()
		}
		select {
		case <-poll.C:
		case <-exited:
			return fmt.Errorf("RabbitMQ exited while starting (%v); it wrote:\n%s", r.broker.ProcessState, r.Logs())
		case <-deadline.C:
			r.kill()
			return fmt.Errorf("RabbitMQ did not answer on %s within %v (%v); it wrote:\n%s", r.URL(), rabbitStartLimit, err, r.Logs())
		}
	}
}

// Restart kills the broker with SIGKILL, as a crash would, and starts it
// again on the same port with the same database: clients see their
// connections closed, then a broker with the durable queues and the
// persistent messages it had confirmed. The definitions are written to
// disk first (syncDefinitions), so that those declared just before last
// the crash too: the tests crash the broker to test messages.
func (r *Rabbit) Restart(t testing.TB) {
	t.Helper()
	if err := r.syncDefinitions(); err != nil {
		t.Fatal(err)
	}
	r.kill()
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
}

// syncDefinitions has the broker write every declaration it acknowledged
// to its tables on disk (mnesia:dump_log/0). RabbitMQ 3.x acknowledges a
// declaration or binding before it would last a crash: Mnesia commits it in
// a transaction over a disc table and a RAM table, which it runs as an
// asymmetric one, and the record that the transaction committed is logged
// by another process after the client got its declare-ok, reaching the
// file at the next sync or up to 2 s later (disk_log's write cache). A
// broker killed meanwhile presumes at start that the transaction aborted:
// under load a binding declared just before the kill was gone, its
// exchange and queue there, and every mandatory publish came back NO_ROUTE.
// dump_log waits for those decisions and writes the committed transactions
// to the tables' files.
func (r *Rabbit) syncDefinitions() error {
	return r.call("dumped", "mnesia", "dump_log")
}

// call calls a function (module, function and arguments, each an Erlang
// term) on the broker's node through erl_call, Erlang's own client (Erlang
// ships it; rabbitmqctl took 2 s to start, erl_call 0.1 s), and checks what
// it returned.
func (r *Rabbit) call(want string, mfa ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), rabbitStartLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "erl_call", "-sname", r.node, "-a", strings.Join(mfa, " "))
	cmd.Env = r.env // HOME holds the cookie, ERL_EPMD_PORT names its epmd
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != want {
		return fmt.Errorf("erl_call %s on %s: %v, returned %q, want %q", strings.Join(mfa, " "), r.node, err, out, want)
	}
	return nil
}

func (r *Rabbit) kill() {
	r.mu.Lock()
	if r.pubConn != nil {
		// Closed now: after a restart the client might not yet know that
		// the broker it talked to is gone.
		_ = r.pubConn.Close()
		r.pubConn, r.pub = nil, nil
	}
	r.mu.Unlock()
	if r.broker == nil || r.broker.Process == nil {
		return
	}
	_ = syscall.Kill(-r.broker.Process.Pid, syscall.SIGKILL)
	<-r.exited
}

// keepEnv, set to anything, keeps a broker's directory (its database and
// its whole log) when it closes, to read after a failure.
const keepEnv = "RABBIT_TEST_KEEP"

// Close kills the broker and its epmd and removes the database, unless
// keepEnv is set.
func (r *Rabbit) Close() {
	r.kill()
	if r.epmd.Process != nil {
		_ = r.epmd.Process.Kill()
		_ = r.epmd.Wait()
	}
	if os.Getenv(keepEnv) != "" {
		fmt.Fprintf(os.Stderr, "RabbitMQ's directory kept (%s): %s\n", keepEnv, r.dir)
		return
	}
	_ = os.RemoveAll(r.dir)
}

// Logs is the end of what the broker wrote (its log goes to its standard
// output): its last 60 lines.
func (r *Rabbit) Logs() string {
	b, err := os.ReadFile(r.brokerLogs)
	if err != nil {
		return err.Error()
	}
	lines := strings.SplitAfter(string(b), "\n")
	return strings.Join(lines[max(0, len(lines)-60):], "")
}

// URL is the broker's AMQP URL, with user guest.
func (r *Rabbit) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", r.Port) }

// Env is the environment a process needs to use this broker.
func (r *Rabbit) Env() []string { return []string{"RABBIT_SERVER_URL=" + r.URL()} }

// TopicURL and SubscriptionURL are gocloud.dev/pubsub URLs (rabbit): an
// exchange, and a queue.
func (r *Rabbit) TopicURL(exchange string) string { return "rabbit://" + exchange }

func (r *Rabbit) SubscriptionURL(queue string) string { return "rabbit://" + queue }

// freePorts are n ports free on 127.0.0.1 a moment ago, below the range
// the system picks the local ports of connections from: the broker takes
// its ports again when Restart starts it after a kill, and a port of that
// range could meanwhile be another connection's (RabbitMQ then failed to
// boot, "could not bind to distribution port", under a package's load).
func freePorts(n int) ([]int, error) {
	lowest := 10000
	ephemeral := 32768 // Linux's default start of ip_local_port_range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if low, err := strconv.Atoi(f[0]); err == nil && low > lowest+1000 {
				ephemeral = low
			}
		}
	}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("no %d free ports between %d and %d", n, lowest, ephemeral)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(lowest+rand.IntN(ephemeral-lowest)))
		if err != nil {
			continue // taken
		}
		defer l.Close() // held until all are chosen, so that they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// channel is a channel on a connection of the test's own, closed when the
// test ends.
func (r *Rabbit) channel(t testing.TB) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// Queue types for Declare. A quorum queue adds the header x-delivery-count
// to a message it delivers again: the server's own count of redeliveries.
const (
	Classic = "classic"
	Quorum  = "quorum"
)

// Declare declares a durable fanout exchange and a durable queue of
// queueType bound to it: what a rabbit:// topic sends to and a rabbit://
// subscription reads.
func (r *Rabbit) Declare(t testing.TB, exchange, queue, queueType string) {
	t.Helper()
	ch := r.channel(t)
	defer ch.Close()
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{amqp.QueueTypeArg: queueType}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
}

// Publish publishes one persistent message with headers to an exchange and
// returns once the broker confirmed it.
func (r *Rabbit) Publish(t testing.TB, exchange string, data []byte, headers map[string]string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pub == nil || r.pub.IsClosed() {
		conn, err := amqp.Dial(r.URL())
		if err != nil {
			t.Fatal(err)
		}
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		if err != nil {
			_ = conn.Close()
			t.Fatal(err)
		}
		r.pubConn, r.pub = conn, ch
		r.pubGone = ch.NotifyClose(make(chan *amqp.Error, 1))
	}
	ch := r.pub
	h := amqp.Table{}
	for k, v := range headers {
		h[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, "", true, false, amqp.Publishing{
		Headers: h, Body: data, DeliveryMode: amqp.Persistent,
	})
	if err == nil {
		var ok bool
		if ok, err = conf.WaitContext(ctx); err == nil && !ok {
			err = errors.New("the broker refused it (basic.nack)")
			select {
			case e := <-r.pubGone: // a closed channel answers nack too
				err = fmt.Errorf("the channel closed: %w", e)
			default:
			}
		}
	}
	if err != nil {
		t.Fatalf("publish %q to exchange %s: %v", data, exchange, err)
	}
}

// QueueState is what the broker says of a queue: the messages ready for
// delivery (neither delivered nor held unacknowledged by a consumer) and
// the consumers.
type QueueState struct{ Ready, Consumers int }

// State asks the broker for the queue's state.
func (r *Rabbit) State(t testing.TB, queue string) QueueState {
	t.Helper()
	ch := r.channel(t)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("queue %s: %v", queue, err)
	}
	return QueueState{Ready: q.Messages, Consumers: q.Consumers}
}
