// Package brazecurrents registers the Braze Currents components of Currents
// Connect: the braze_currents input (walks a Currents bucket through
// gocloud.dev/blob, checkpointed, sharded, watching for new objects), the
// braze_currents_http input (receives Currents' Custom HTTP POSTs) and the
// braze_currents scanner (decodes Currents Avro files for any file input).
//
// Its exported API is small: the metadata keys the components set
// (MetaEventType and the others), ErrCorrupt, which every error about
// damaged object bytes matches, and ParseObjectKey for Currents object keys.
// docs/architecture.md describes how the input decides that an object, and
// an hour, is done.
package brazecurrents
