package segmentapi

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
)

// ControlStats is GET /_control/stats: Stats plus the dedup counters, taken
// in one snapshot.
type ControlStats struct {
	Stats
	UniqueMessageIDs int `json:"unique_message_ids"`
	Duplicates       int `json:"duplicates"`
}

// ControlStats returns Stats and the dedup counters consistently.
func (s *Server) ControlStats() ControlStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ControlStats{Stats: s.statsLocked(), UniqueMessageIDs: len(s.rec.counts), Duplicates: s.rec.dups()}
}

// controlHandler serves /_control/ for out-of-process tests. Its requests
// never count as Segment requests, consume faults, or suffer outages.
func (s *Server) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_control/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.ControlStats())
	})
	mux.HandleFunc("GET /_control/accepted", func(w http.ResponseWriter, _ *http.Request) {
		if !s.cfg.keepCalls() {
			writeJSON(w, http.StatusConflict, errorBody{Error: "calls are not kept (WithRecordIDsOnly)"})
			return
		}
		calls := s.Accepted()
		if calls == nil {
			calls = []Call{} // [] rather than null for clients
		}
		writeJSON(w, http.StatusOK, calls)
	})
	mux.HandleFunc("POST /_control/fault", func(w http.ResponseWriter, r *http.Request) {
		var f FaultSpec
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
		dec.DisallowUnknownFields() // a typo must not silently inject nothing
		err := dec.Decode(&f)
		if err == nil {
			err = s.Inject(f)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, okBody)
	})
	mux.HandleFunc("POST /_control/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		writeJSON(w, http.StatusOK, okBody)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.markConnLocked(r, roleControl)
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// RunCommand is the segmentapi command: it parses flags, starts a server with
// the control API, prints "listening <URL>" as the first line of stdout, and
// serves until ctx ends. Tests call it in-process; main adds signals.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("segmentapi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	key := fs.String("write-key", "", "the write key whose calls are accepted (required)")
	latency := fs.Duration("latency", 0, "delay every /v1/* request by this much")
	maxCall := fs.Int("max-call-bytes", DefaultMaxCallBytes, "per-call JSON size limit")
	maxBatch := fs.Int("max-batch-bytes", DefaultMaxBatchBytes, "request body size limit")
	maxCalls := fs.Int("max-calls", DefaultMaxCalls, "calls per batch above which all are silently dropped")
	certFile := fs.String("tls-cert", "", "serve HTTPS, HTTP/2 offered, under this certificate (PEM file; with -tls-key)")
	keyFile := fs.String("tls-key", "", "the private key of -tls-cert (PEM file)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("-write-key is required")
	}
	opts := []Option{WithAddr(*addr), WithLatency(*latency), WithMaxCallBytes(*maxCall),
		WithMaxBatchBytes(*maxBatch), WithMaxCalls(*maxCalls), WithControlAPI()}
	if *certFile != "" || *keyFile != "" {
		certPEM, err := os.ReadFile(*certFile)
		if err != nil {
			return err
		}
		keyPEM, err := os.ReadFile(*keyFile)
		if err != nil {
			return err
		}
		opts = append(opts, WithTLSCert(certPEM, keyPEM))
	}
	s, err := Start(*key, opts...)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "listening %s\n", s.URL()); err != nil {
		_ = s.Close()
		return err
	}
	<-ctx.Done()
	return s.Close()
}
