package bloblang_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// results are a pipeline's calls and mapping errors, by event id.
type results struct {
	mu    sync.Mutex
	calls map[string]map[string]any
	errs  map[string]string
}

// runPipeline runs the mapping processor of the shipped config into a consumer of its results, from
// inputYAML (run to its end) or, when eras are given, from the braze_currents_http input on loopback,
// to which each era is POSTed (even events with their null fields, odd ones without).
func runPipeline(t *testing.T, config, inputYAML string, eras []era) *results {
	t.Helper()
	res := &results{calls: map[string]map[string]any{}, errs: map[string]string{}}
	// Bloblang's global environment resolves imports from the directory it was made in (the package's, at
	// init): one made now resolves them from the repository root, as the binary started there does.
	env := service.NewEnvironment()
	env.UseBloblangEnvironment(bloblang.GlobalEnvironment())
	b := env.NewStreamBuilder()
	listening := &listenLog{url: make(chan string, 1)}
	b.SetLogger(slog.New(slog.NewTextHandler(listening, nil)))
	if eras != nil {
		inputYAML = "braze_currents_http:\n  address: 127.0.0.1:0\n  token: conformance"
	}
	for _, err := range []error{
		b.AddInputYAML(inputYAML),
		b.AddProcessorYAML("mapping: " + jsonText(t, shippedMapping(t, config))), // a JSON string is a YAML string
		b.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error {
			res.mu.Lock()
			defer res.mu.Unlock()
			for _, m := range batch {
				v, err := m.AsStructured()
				if err != nil {
					return err
				}
				if merr := m.GetError(); merr != nil {
					res.errs[fmt.Sprint(v.(map[string]any)["id"])] = merr.Error()
					continue
				}
				call := normalise(v).(map[string]any) // a copy, as JSON reads it
				res.calls[fmt.Sprint(call["messageId"])] = call
			}
			return nil
		}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if eras == nil {
		if err := s.Run(ctx); err != nil {
			t.Fatal(err)
		}
		return res
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var url string
	select {
	case url = <-listening.url:
	case err := <-done:
		t.Fatalf("the Custom HTTP stream ended before listening: %v", err)
	}
	for _, e := range eras {
		events := make([]any, 0, len(e.records))
		for i, r := range e.records {
			events = append(events, fixtures.CustomHTTPEvent(e.eventType, r, i%2 == 1))
		}
		body, err := json.Marshal(map[string]any{"events": events})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer conformance")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s of %s over Custom HTTP: status %d", e.eventType, e.seenFrom, resp.StatusCode)
		}
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	return res
}

// mappings are the mappings of a list of processors, "" for a processor
// of another kind.
type mappings []struct{ Mapping string }

// shippedConfig is what the tests read of a shipped config: the processors
// of its pipeline and of its fallback's outputs.
type shippedConfig struct {
	Pipeline struct{ Processors mappings }
	Output   struct {
		Fallback []struct{ Processors mappings }
	}
}

func readShippedConfig(t *testing.T, config string) shippedConfig {
	t.Helper()
	raw, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	var c shippedConfig
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s: %v", config, err)
	}
	return c
}

// shippedMapping is the mapping of the first processor of a shipped config.
func shippedMapping(t *testing.T, config string) string {
	t.Helper()
	return readShippedConfig(t, config).firstMapping(t, config)
}

// firstMapping is the mapping of the first processor of the pipeline.
func (c shippedConfig) firstMapping(t *testing.T, config string) string {
	t.Helper()
	if len(c.Pipeline.Processors) == 0 || c.Pipeline.Processors[0].Mapping == "" {
		t.Fatalf("%s: no mapping processor first", config)
	}
	return c.Pipeline.Processors[0].Mapping
}

// listenLog is a log writer that sends the URL the Custom HTTP input logs it listens at.
type listenLog struct {
	url  chan string
	once sync.Once
}

var listenLine = regexp.MustCompile(`Receiving Braze Currents events at (http://[^\s"]+)`)

func (w *listenLog) Write(p []byte) (int, error) {
	if m := listenLine.FindSubmatch(p); m != nil {
		w.once.Do(func() { w.url <- string(m[1]) })
	}
	return len(p), nil
}
