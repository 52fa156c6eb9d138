package main

import "fmt"

// stockConfig is what a user would build from benthos core components
// alone: the file input with the deprecated avro-ocf codec (one message per
// event, goavro's union wrappers {"string": …} left in), the workload's
// processors, and http_client batching calls to /v1/batch within Segment's
// 500 KB limit. The processors are resources so that the stages can run
// them one by one.
func stockConfig(bucket, endpoint, processors string) string {
	return fmt.Sprintf(`
http:
  enabled: false
input:
  file:
    paths: [ "%s/**/*.avro" ]
    codec: avro-ocf:marshaler=json
%s
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
`, bucket, processors, endpoint, writeKey)
}

// stockFiftyProcessors, for the 50 types: a mapping that unwraps goavro's
// unions (fields, and the items of arrays of nullable strings) and takes the
// event type from the path, then the same Bloblang mapping as ours.
const stockFiftyProcessors = `
pipeline:
  processors:
    - resource: stock_unwrap
    - resource: stock_mapping
processor_resources:
  - label: stock_unwrap
    mapping: |
      meta braze_event_type = @path.re_find_all_submatch("event_type=([^/]+)").index(0).index(1)
      root = this.map_each(kv -> if kv.value.type() == "object" {
        kv.value.values().index(0).(v -> if v.type() == "array" {
          v.map_each(item -> if item.type() == "object" { item.values().index(0) } else { item })
        } else { v })
      } else { kv.value })
  - label: stock_mapping
    processors:
      - mapping: |
          import "./bloblang/currents_to_segment.blobl"
          root = {"event": this, "event_type": @braze_event_type, "options": {"include_anonymous": true}}.apply("currents_to_segment")
      # Events the mapping refuses (none of the bench's: those of no user it skips) are dropped, not sent.
      - catch:
          - mapping: root = deleted()
`

// stockSingleProcessors, for users.messages.email.Send alone: the small
// mapping a user with that one type would write by hand, reading each
// nullable field through goavro's union ({"string": …}) and giving the same
// track call as ours (Braze's properties for the type, the email as a
// trait, anonymous users included). The bench checks that the calls are
// the same.
const stockSingleProcessors = `
pipeline:
  processors:
    - resource: stock_mapping
processor_resources:
  - label: stock_mapping
    mapping: |
      root = {
        "type": "track",
        "event": "Email Sent",
        "messageId": this.id,
        "timestamp": this.time.ts_format("2006-01-02T15:04:05Z", "UTC"),
        "userId": this.external_user_id.string.or(deleted()),
        "anonymousId": this.user_id,
        "context": {"traits": {"email": this.email_address}},
        "properties": {
          "dispatch_id": this.dispatch_id.string.or(deleted()),
          "campaign_id": this.campaign_id.string.or(deleted()),
          "campaign_name": this.campaign_name.string.or(deleted()),
          "message_variation_id": this.message_variation_id.string.or(deleted()),
          "message_variation_name": this.message_variation_name.string.or(deleted()),
          "canvas_id": this.canvas_id.string.or(deleted()),
          "canvas_name": this.canvas_name.string.or(deleted()),
          "canvas_variation_id": this.canvas_variation_id.string.or(deleted()),
          "canvas_variation_name": this.canvas_variation_name.string.or(deleted()),
          "canvas_step_id": this.canvas_step_id.string.or(deleted()),
          "canvas_step_name": this.canvas_step_name.string.or(deleted()),
          "send_id": this.send_id.string.or(deleted()),
          "ip_pool": this.ip_pool.string.or(deleted()),
          "message_extras": this.message_extras.string.or(deleted()),
          "app_group_id": this.app_group_id.string.or(deleted()),
          "from_domain": this.from_domain.string.or(deleted())
        }
      }
`

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
