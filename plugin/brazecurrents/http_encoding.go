package brazecurrents

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// bodyCoding reads the request's Content-Encoding: whether the body is gzip,
// or a 415 answer for a coding the input cannot read. Braze documents none,
// but a gzip body read as JSON got a 400, which Braze answers by re-sending
// each event alone and dropping each one answered 400 again.
func bodyCoding(r *http.Request) (gzipped bool, refused *answer) {
	enc := strings.ToLower(strings.TrimSpace(strings.Join(r.Header.Values("Content-Encoding"), ",")))
	switch enc {
	case "", "identity":
		return false, nil
	case "gzip", "x-gzip":
		return true, nil
	}
	return false, &answer{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q is not supported: send the body as it is, or gzip", enc)}
}

// errGzipTruncated stands for a gzip stream cut short, which readChunked
// would otherwise take for the body's end (io.ErrUnexpectedEOF).
var errGzipTruncated = errors.New("the gzip stream is cut short")

type gzipStrictEOF struct{ io.Reader }

func (g gzipStrictEOF) Read(p []byte) (int, error) {
	n, err := g.Reader.Read(p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = errGzipTruncated
	}
	return n, err
}

// readGzip decompresses body (its compressed bytes already limited) into
// pooled chunks, refusing it once more than max_body_size was decompressed:
// a small body that inflates without end (a gzip bomb) costs no more than a
// plain body of the limit. charge is readChunked's.
func (in *httpInput) readGzip(body io.Reader, charge func(int64) error) ([]byte, int, error) {
	zr, err := gzip.NewReader(body)
	if err == nil {
		var data []byte
		data, err = readChunked(gzipStrictEOF{io.LimitReader(zr, in.maxBody+1)}, charge)
		if err == nil && int64(len(data)) > in.maxBody {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the body decompressed is over the limit of %d bytes", in.maxBody)
		}
		if err == nil {
			return data, 0, nil
		}
	}
	if status, rerr := in.readError(err); status != http.StatusBadRequest {
		return nil, status, rerr
	}
	if errors.Is(err, io.EOF) {
		err = errGzipTruncated
	}
	return nil, http.StatusBadRequest, fmt.Errorf("the body is not valid gzip: %v", err)
}
