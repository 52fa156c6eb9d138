package queues

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsChildEnv tells a test binary started by StartNATSProcess to serve
// NATS instead of running tests: "<port> <store directory>".
const natsChildEnv = "QUEUES_NATS_SERVE"

// ServeNATSChild makes the test binary a NATS server when StartNATSProcess
// started it, and never returns then; otherwise it returns at once. A test
// package that uses StartNATSProcess calls it first thing in its TestMain.
func ServeNATSChild() {
	spec := os.Getenv(natsChildEnv)
	if spec == "" {
		return
	}
	portText, store, _ := strings.Cut(spec, " ")
	port, err := strconv.Atoi(portText)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: %v\n", natsChildEnv, spec, err)
		os.Exit(2)
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true, JetStream: true, StoreDir: store,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	srv.Start()
	srv.WaitForShutdown() // until SIGKILL
	os.Exit(0)
}

// NATSProcess is a NATS server with JetStream in a process of its own (the
// test binary, through ServeNATSChild), on a loopback port, with its store
// in a temporary directory: unlike NATS, it can be killed with SIGKILL, a
// crash that flushes nothing.
type NATSProcess struct {
	cmd   *exec.Cmd
	port  int
	store string
}

// StartNATSProcess starts the server, killed when the test ends.
func StartNATSProcess(t testing.TB) *NATSProcess {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &NATSProcess{port: l.Addr().(*net.TCPAddr).Port, store: t.TempDir()}
	l.Close()
	p.start(t)
	t.Cleanup(func() {
		if p.cmd != nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

// URL is the server's client URL.
func (p *NATSProcess) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", p.port) }

// JetStream is a client of the server that reconnects for ever, across
// crashes; closed when the test ends.
func (p *NATSProcess) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	_, js := jetStreamClient(t, p.URL(), nats.MaxReconnects(-1))
	return js
}

// Crash kills the server with SIGKILL and starts it again on the same port
// and store.
func (p *NATSProcess) Crash(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	p.start(t)
}

func (p *NATSProcess) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s", natsChildEnv, p.port, p.store))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	// It answers once it listens; a start after a crash recovers the store
	// first.
	for deadline := time.Now().Add(time.Minute); ; {
		c, err := net.Dial("tcp", p.URL()[len("nats://"):])
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the NATS server process did not listen within a minute: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
