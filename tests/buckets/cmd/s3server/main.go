// Command s3server serves the S3 API (gofakes3) for end-to-end tests.
//
//	s3server -addr 127.0.0.1:PORT -bucket NAME -dir DATA_DIR
//
// Objects are kept in DATA_DIR/s3.bolt (bbolt, crash-safe), so they survive a
// kill and restart; without -dir they are kept in memory only. The first
// stdout line is "listening http://HOST:PORT". Credentials are not checked.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	bolt "go.etcd.io/bbolt"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address; port 0 picks a free port")
	bucket := flag.String("bucket", "connect-test", "bucket to create if missing")
	dir := flag.String("dir", "", "data directory; empty keeps objects in memory only")
	flag.Parse()

	var backend gofakes3.Backend = s3mem.New()
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			log.Fatal(err)
		}
		// The timeout fails fast instead of waiting forever if another
		// s3server still holds the file lock.
		db, err := bolt.Open(filepath.Join(*dir, "s3.bolt"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			log.Fatal(err)
		}
		defer db.Close()
		backend = &copyingBackend{Backend: s3bolt.New(db)}
	}
	if err := backend.CreateBucket(*bucket); err != nil && !gofakes3.IsAlreadyExists(err) {
		log.Fatal(err)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening http://%s\n", ln.Addr())

	srv := &http.Server{Handler: gofakes3.New(backend).Server()}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	go func() {
		<-ctx.Done()
		log.Printf("shutting down: %v", context.Cause(ctx)) // says which signal, should a test see it stop
		srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
