package avro

import (
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

// Decompressing a block within MaxBlockBytes, whatever it claims.

func (o *Reader) decompress(raw []byte) ([]byte, error) {
	switch o.header.codec {
	case "deflate":
		if o.flate == nil {
			o.flate = flate.NewReader(bytes.NewReader(raw))
		} else if err := o.flate.(flate.Resetter).Reset(bytes.NewReader(raw), nil); err != nil {
			return nil, err
		}
		return o.inflate(o.flate)
	case "snappy":
		// Avro appends a big-endian CRC-32 of the uncompressed bytes.
		if len(raw) < 4 {
			return nil, errors.New("shorter than its checksum")
		}
		body, sum := raw[:len(raw)-4], binary.BigEndian.Uint32(raw[len(raw)-4:])
		n, err := snappy.DecodedLen(body)
		if err != nil {
			return nil, err
		}
		// No snappy op expands more than 32-fold, so a larger claim is a lie
		// that must not be allowed to allocate.
		if n > MaxBlockBytes || n > 32*len(body)+32 {
			return nil, fmt.Errorf("claims %d decompressed bytes from %d (block limit %d)", n, len(body), MaxBlockBytes)
		}
		o.plain = grown(o.plain, n)
		plain, err := snappy.Decode(o.plain, body)
		if err != nil {
			return nil, err
		}
		if crc32.ChecksumIEEE(plain) != sum {
			return nil, errors.New("checksum mismatch")
		}
		return plain, nil
	case "zstandard":
		if o.zstd == nil {
			// Streamed, not DecodeAll: DecodeAll grows its output past the
			// limit before noticing. The window is bounded like a block.
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxMemory(MaxBlockBytes))
			if err != nil {
				return nil, err
			}
			o.zstd = d
		}
		if err := o.zstd.Reset(bytes.NewReader(raw)); err != nil {
			return nil, err
		}
		return o.inflate(o.zstd)
	case "bzip2":
		// A reader per block: compress/bzip2 cannot be reset. It holds one
		// bzip2 block of at most 900 kB (3.6 MB of tables), whatever the
		// stream claims.
		return o.inflate(bzip2.NewReader(bytes.NewReader(raw)))
	}
	return raw, nil
}

// errInflates reports a compressed block that would exceed the block limit.
var errInflates = fmt.Errorf("decompresses beyond the %d-byte block limit: not read further", MaxBlockBytes)

// inflate reads a decompressor into o.plain, which never grows beyond
// MaxBlockBytes: a decompression bomb costs the limit, not its claim.
func (o *Reader) inflate(r io.Reader) ([]byte, error) {
	buf := o.plain[:0]
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= MaxBlockBytes {
				var probe [1]byte
				n, err := io.ReadFull(r, probe[:])
				if n > 0 {
					return nil, errInflates
				}
				if err != io.EOF {
					return nil, err
				}
				o.plain = buf
				return buf, nil
			}
			next := grown(nil, min(max(2*cap(buf), 64<<10), MaxBlockBytes))
			buf = next[:copy(next, buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			o.plain = buf
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// readFull is io.ReadFull that returns an early end of file as io.EOF, the
// sign of damage, never as io.ErrUnexpectedEOF, which a broken download
// may return too (its errors come tagged: see sourceReader).
func readFull(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil && (err != io.EOF || n < len(buf)) {
			return n, err
		}
	}
	return n, nil
}

// grown returns b resized to n bytes, reallocated only when too small.
func grown(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// Close releases the zstandard decoder, if one was made.
func (o *Reader) Close() {
	if o.zstd != nil {
		o.zstd.Close()
	}
}
