package main

import "fmt"

// stockConfig is what a user would build from benthos core components
// alone: the file input with the deprecated avro-ocf codec (one message per
// event, goavro's union wrappers {"string": …} left in), a mapping that
// unwraps them and takes the event type from the path, the same Bloblang
// mapping as ours, and http_client batching calls to /v1/batch within Segment's 500 KB limit.
// The processors are resources so that the stages below can run them one by one.
func stockConfig(bucket, endpoint string) string {
	return fmt.Sprintf(`
http:
  enabled: false
input:
  file:
    paths: [ "%s/**/*.avro" ]
    codec: avro-ocf:marshaler=json
pipeline:
  processors:
    - resource: stock_unwrap
    - resource: stock_mapping
processor_resources:
  - label: stock_unwrap
    mapping: |
      meta braze_event_type = @path.re_find_all_submatch("event_type=([^/]+)").index(0).index(1)
      root = this.map_each(kv -> if kv.value.type() == "object" { kv.value.values().index(0) } else { kv.value })
  - label: stock_mapping
    processors:
      - mapping: |
          import "./bloblang/currents_to_segment.blobl"
          root = {"event": this, "event_type": @braze_event_type, "options": {"include_anonymous": true}}.apply("currents_to_segment")
      # Events the mapping refuses (no user at all) are dropped, not sent.
      - catch:
          - mapping: root = deleted()
output:
  http_client:
    url: %s/v1/batch
    verb: POST
    headers:
      Content-Type: application/json
    basic_auth:
      enabled: true
      username: %s
    max_in_flight: 16
    batching:
      count: 500
      byte_size: 450000
      period: 1s
      processors:
        - archive:
            format: json_array
        - mapping: 'root = {"batch": this}'
`, bucket, endpoint, writeKey)
}

// decoderConfig is our input alone, into drop: the cost of listing,
// reading and decoding.
func decoderConfig(bucket string) string {
	return fmt.Sprintf(`
http:
  enabled: false
input:
  braze_currents:
    url: file://%s
    progress_interval: 0s
output:
  drop: {}
`, bucket)
}

// stage is one pipeline cut short: its input and some of its processors
// (the others replaced by noop), into drop, so that the CPU each part adds
// can be read off the difference between successive stages. The cuts are
// made with the CLI's --set on the same configs, so they run exactly what
// the full lines run.
type stage struct {
	name     string
	pipeline string // "ours" or "stock": which config
	noop     []int  // indexes of pipeline.processors replaced by noop
}

var stages = []stage{
	{"ours: input", "ours", []int{0, 1}},
	{"  + mapping", "ours", []int{1}},
	{"  + counters", "ours", nil},
	{"stock: input", "stock", []int{0, 1}},
	{"  + unwrap", "stock", []int{1}},
	{"  + mapping", "stock", nil},
}

// args cuts the pipeline. Stages log nothing: events the mapping refuses
// would log one error each, as in the full lines.
func (s stage) args() []string {
	args := []string{"--set", "output={drop: {}}", "--log.level", "none"}
	for _, i := range s.noop {
		args = append(args, "--set", fmt.Sprintf("pipeline.processors.%d={noop: {}}", i))
	}
	return args
}
