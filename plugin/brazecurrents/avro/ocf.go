// Package avro reads Avro Object Container Files as Braze Currents writes
// them: a streaming reader that holds one block at a time, a compiler of
// writer schemas, and a decoder that turns a block's records into JSON text
// or into the Go values a mapping reads. It bounds the memory any file can
// make it hold, whatever its bytes claim, and reports damage with the byte
// offset where it was found.
package avro

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Limits on what one object can make a reader hold, whatever its bytes say.
// A Segment call carries at most 32 KB, and Currents files are written in
// small blocks (Java Avro's default sync interval is 64 KB; our fixtures hold
// 1,000 events, about 0.5 MB, per block), so the limits sit far above real
// data and far below what hurts: a reader holds at most the compressed
// block, the decompressed block and the strings of the batches out.
const (
	// MaxRecordBytes is 8 times a Segment call: a record over it could only
	// fit a call if nearly all its bytes were fields the mapping drops.
	MaxRecordBytes = 256 << 10
	// MaxBlockBytes bounds a block, compressed or not: 16 records at the
	// record limit, 64 times Java's default block. At 8 MiB, blocks of
	// records near the limit took the shipped config to 150-190 MB.
	MaxBlockBytes = 4 << 20
	// MaxHeaderBytes bounds the header's metadata, schema included
	// (Currents schemas are under 10 KB).
	MaxHeaderBytes = 256 << 10
)

var ocfMagic = []byte{'O', 'b', 'j', 1}

// errNoCodec is returned when a file names a compression codec we cannot read.
var errNoCodec = errors.New("unsupported avro.codec")

// ocfHeader is what an Object Container File declares before its blocks.
type ocfHeader struct {
	schema []byte
	codec  string
	sync   [16]byte
}

// Reader streams an Object Container File one block at a time, so memory
// stays flat however many blocks a file holds. It tracks the byte offset of
// everything it reads so that errors can say where a file is damaged.
type Reader struct {
	r      *bufio.Reader
	offset int64
	header ocfHeader

	raw   []byte // compressed block bytes, reused between blocks
	plain []byte // decompressed block bytes, reused between blocks
	flate io.ReadCloser
	zstd  *zstd.Decoder
}

// Block is one decompressed block: Count records packed in Data, which the
// Reader reuses for its next block.
type Block struct {
	Count  int64
	Data   []byte
	Offset int64 // byte offset of the block's first byte in the file
}

// NewReader reads an Object Container File from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(sourceReader{r}, 64<<10)}
}

// sourceReader tags every error of the reader a file comes from except a
// clean io.EOF: a broken download may fail with io.ErrUnexpectedEOF at any
// byte, block boundaries included, and must not pass for a file that ends
// early, which only io.EOF says.
type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

// sourceError is a failure of the underlying reader: reading again may pass.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }

func (e *sourceError) Unwrap() error { return e.err }

// ErrCorrupt matches (with errors.Is) every error about bytes that are not a
// valid Currents Avro file, as opposed to errors reading them: reading again
// cannot fix a corrupt object, while a read error may pass.
var ErrCorrupt = errors.New("corrupt Avro object")

// positionError names where in the file a problem was found.
type positionError struct {
	offset  int64
	err     error
	corrupt bool
}

func (e *positionError) Error() string {
	return fmt.Sprintf("at byte %d: %v", e.offset, e.err)
}

func (e *positionError) Unwrap() error { return e.err }

func (e *positionError) Is(target error) bool { return e.corrupt && target == ErrCorrupt }

// CorruptAt reports damage found at offset in the file: the error reads "at
// byte <offset>: <err>" and matches ErrCorrupt.
func CorruptAt(offset int64, err error) error {
	return &positionError{offset: offset, err: err, corrupt: true}
}

// errAt reports damage in the file at offset.
func (o *Reader) errAt(offset int64, format string, args ...any) error {
	return CorruptAt(offset, fmt.Errorf(format, args...))
}

// readErr reports a failure of the underlying reader at offset.
func (o *Reader) readErr(offset int64, what string, err error) error {
	return &positionError{offset: offset, err: fmt.Errorf("reading %s: %w", what, err)}
}

// ReadHeader reads the magic bytes, the metadata map and the sync marker,
// and returns the writer schema. An empty stream yields io.EOF so that
// callers can skip empty objects.
func (o *Reader) ReadHeader() ([]byte, error) {
	if err := o.readHeader(); err != nil {
		return nil, err
	}
	return o.header.schema, nil
}

func (o *Reader) readHeader() error {
	var magic [4]byte
	n, err := readFull(o.r, magic[:])
	o.offset += int64(n)
	if err == io.EOF && n == 0 {
		return io.EOF
	}
	if err != nil && err != io.EOF {
		return o.readErr(0, "header", err)
	}
	if err != nil || !bytes.Equal(magic[:], ocfMagic) {
		return o.errAt(0, "not an Avro object container file (bad magic bytes %q)", magic[:n])
	}
	var schema, codec []byte
	for {
		count, err := o.readLong()
		if err != nil {
			return o.wrapEOF(err, "header metadata")
		}
		if count == 0 {
			break
		}
		if count < 0 {
			// A negative count is followed by the block's size in bytes.
			count = -count
			if _, err := o.readLong(); err != nil {
				return o.wrapEOF(err, "header metadata")
			}
		}
		for ; count > 0; count-- {
			key, err := o.readBytes("header key")
			if err != nil {
				return err
			}
			value, err := o.readBytes("header value")
			if err != nil {
				return err
			}
			// Other keys are read and dropped: they cannot grow a map.
			switch string(key) {
			case "avro.schema":
				schema = value
			case "avro.codec":
				codec = value
			}
		}
	}
	n, err = readFull(o.r, o.header.sync[:])
	o.offset += int64(n)
	if err != nil {
		return o.wrapEOF(err, "header sync marker")
	}
	o.header.schema = schema
	if len(o.header.schema) == 0 {
		return o.errAt(o.offset, "header has no avro.schema")
	}
	o.header.codec = string(codec)
	switch o.header.codec {
	case "":
		o.header.codec = "null"
	case "null", "deflate", "snappy", "zstandard", "bzip2":
	case "xz":
		// Go's xz decoders allocate whatever dictionary a block claims (up
		// to 4 GiB); Currents does not write xz. See docs/scanner.md.
		return o.errAt(o.offset, "%w %q: not read, as an xz block may claim gigabytes of memory (supported: null, deflate, snappy, zstandard, bzip2)", errNoCodec, o.header.codec)
	default:
		return o.errAt(o.offset, "%w %q (supported: null, deflate, snappy, zstandard, bzip2)", errNoCodec, o.header.codec)
	}
	return nil
}

// NextBlock reads, checks and decompresses the next block. It returns io.EOF
// at a clean end of file, after the last block's sync marker. A block
// returned with an error (a bad sync marker after it) can still be decoded.
func (o *Reader) NextBlock() (Block, error) {
	start := o.offset
	count, err := o.readLong()
	if err == io.EOF {
		return Block{}, io.EOF
	}
	if err != nil {
		return Block{}, o.wrapEOF(err, "block record count")
	}
	size, err := o.readLong()
	if err != nil {
		return Block{}, o.wrapEOF(err, "block size")
	}
	if count < 0 || size < 0 {
		return Block{}, o.errAt(start, "invalid block header (records %d, bytes %d)", count, size)
	}
	if size > MaxBlockBytes {
		return Block{}, o.errAt(start, "block of %d records declares %d bytes, over the %d-byte block limit: not read", count, size, MaxBlockBytes)
	}
	o.raw = grown(o.raw, int(size))
	n, err := readFull(o.r, o.raw)
	o.offset += int64(n)
	if err == io.EOF {
		return Block{}, o.errAt(start, "truncated block: declares %d bytes, only %d present", size, n)
	}
	if err != nil {
		return Block{}, o.readErr(start+int64(n), "block", err)
	}
	var sync [16]byte
	n2, err := readFull(o.r, sync[:])
	o.offset += int64(n2)
	if err != nil {
		return Block{}, o.wrapEOF(err, "block sync marker")
	}
	data, err := o.decompress(o.raw)
	if err != nil {
		return Block{}, o.errAt(start, "%s block: %v", o.header.codec, err)
	}
	block := Block{Count: count, Data: data, Offset: start}
	if sync != o.header.sync {
		// The records are decodable, but whatever follows cannot be trusted.
		return block, o.errAt(o.offset-16, "bad sync marker after block")
	}
	return block, nil
}

// readLong reads one zig-zag varint from the stream: io.EOF at the end of
// the file before it, io.ErrUnexpectedEOF inside it.
func (o *Reader) readLong() (int64, error) {
	var u uint64
	for shift, i := uint(0), 0; ; shift, i = shift+7, i+1 {
		b, err := o.r.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		o.offset++
		if i == binary.MaxVarintLen64 {
			return 0, o.errAt(o.offset, "varint overflows 64 bits")
		}
		u |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return int64(u>>1) ^ -int64(u&1), nil
		}
	}
}

// readBytes reads a header key or value; the header as a whole is bounded
// by MaxHeaderBytes.
func (o *Reader) readBytes(what string) ([]byte, error) {
	start := o.offset
	n, err := o.readLong()
	if err != nil {
		return nil, o.wrapEOF(err, what)
	}
	if n < 0 || n > MaxHeaderBytes-o.offset {
		return nil, o.errAt(start, "%s: invalid length %d (the header is limited to %d bytes)", what, n, MaxHeaderBytes)
	}
	buf := make([]byte, n)
	read, err := readFull(o.r, buf)
	o.offset += int64(read)
	if err != nil {
		return nil, o.wrapEOF(err, what)
	}
	return buf, nil
}

// wrapEOF reports err, met reading what. Only the file's own end (io.EOF,
// or readLong's io.ErrUnexpectedEOF) where more bytes are due is damage; the
// source's errors, io.ErrUnexpectedEOF included, come as *sourceError and
// are read errors.
func (o *Reader) wrapEOF(err error, what string) error {
	var pe *positionError
	if errors.As(err, &pe) {
		return err
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return o.errAt(o.offset, "truncated file in %s", what)
	}
	return o.readErr(o.offset, what, err)
}
