package buckets

import (
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/serverproc"
)

var s3Listening = regexp.MustCompile(`^listening (http://\S+)$`)

// S3ServerPackage is cmd/s3server's import path: `go build` finds it from
// any package directory in the module.
const S3ServerPackage = "github.com/currents-connect/currents-connect/tests/buckets/cmd/s3server"

// StartS3Process runs the s3server binary bin (built from S3ServerPackage
// once per test binary; "" builds one for this test) as a separate process
// keeping its data in dir (a t.TempDir() when dir is ""), so end-to-end
// tests can kill it and start it again. stop kills it (SIGKILL, like a
// crash) and is a no-op when it is not running; restart stops it and starts
// it again on the same address, so b.URL stays valid. Both must be called
// from the test's goroutine. The process is killed when the test ends.
func StartS3Process(t testing.TB, bin, dir string) (b *Bucket, stop func(), restart func()) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "s3server")
		if out, err := exec.Command("go", "build", "-o", bin, S3ServerPackage).CombinedOutput(); err != nil {
			t.Fatalf("build s3server: %v\n%s", err, out)
		}
	}

	var cmd *exec.Cmd
	logs := &serverproc.SyncBuffer{}
	run := func(addr string) string {
		cmd = exec.Command(bin, "-addr", addr, "-bucket", s3Bucket, "-dir", dir)
		endpoint, err := serverproc.Start(cmd, s3Listening, 30*time.Second, logs)
		if err != nil {
			t.Fatal(err)
		}
		return endpoint
	}
	endpoint := run("127.0.0.1:0")
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("s3server printed %q: %v", endpoint, err)
	}
	stop = func() { serverproc.Kill(cmd) }
	restart = func() {
		t.Helper()
		stop()
		run(u.Host)
	}
	t.Cleanup(func() {
		serverproc.ReportIfFailed(t, cmd, logs)
		stop()
	})
	return newS3Bucket(endpoint, s3Bucket), stop, restart
}
