// Package segment registers the segment output: Segment calls sent to the
// Tracking API's /v1/batch, acknowledged one call at a time. analytics-go's
// types and Validate are the model of the API; the output does its own
// batching (group commit across the batches in flight), sending and retries,
// which analytics-go's fire-and-forget client cannot acknowledge per call.
//
// Its exported API is the error of a failed call, CallError, with its Cause
// (CauseInvalid and the others, also the segment_calls_failed metric's
// label), and IsPermanent. docs/segment.md explains the choices.
package segment
