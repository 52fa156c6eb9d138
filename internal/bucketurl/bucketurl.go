// Package bucketurl checks the gocloud.dev/blob bucket URLs that the
// components of this repository open, and names a bucket in messages
// without the settings of its URL. It registers the schemes the binary
// opens: s3://, gs://, azblob:// and file://, each with its cloud's usual
// credential chain.
package bucketurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcp"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"

	"github.com/currents-connect/currents-connect/internal/redact"
)

// Check refuses a bucket URL, given in the config field field, that no
// retry can open: one without a scheme (a bare path), with a scheme this
// binary has no driver for, with a path after a cloud bucket's name (which
// the driver would drop), with gocloud's prefix= or key=, with settings
// its driver refuses (a query parameter it does not know, a bad value), or
// an s3 one with no region.
func Check(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return redact.ParseError(field, err)
	}
	schemes := strings.Join(blob.DefaultURLMux().BucketSchemes(), ", ")
	switch {
	case u.Scheme == "":
		return fmt.Errorf("%s %q has no scheme: write s3://bucket?region=…, gs://bucket, azblob://container or file:///path/to/dir (this build opens %s)",
			field, Name(raw), schemes)
	case !blob.DefaultURLMux().ValidBucketScheme(u.Scheme):
		return fmt.Errorf("%s %q: unknown scheme %q, this build opens %s", field, Name(raw), u.Scheme, schemes)
	case u.Scheme == fileblob.Scheme && u.Host != "" && u.Host != "." && u.Host != "localhost":
		// file://data/x would use /x: the host is dropped (localhost is
		// this machine, file:///x).
		return fmt.Errorf("%s %q: a file URL takes an absolute path, file:///path/to/dir, or one relative to the working directory, file://./path/to/dir",
			field, Name(raw))
	case u.Scheme != fileblob.Scheme && strings.Trim(u.Path, "/") != "":
		// The drivers open the bucket by its host and drop the path unread.
		return fmt.Errorf("%s %q: a %s URL names the bucket only, and its driver ignores the path %q: give it as the input's prefix (CURRENTS_PREFIX in the shipped configs) or the bucket output's path",
			field, Name(raw), u.Scheme, u.Path)
	}
	// gocloud's own settings, which its URL mux takes and the drivers refuse
	// as unknown: a prefix there would be added twice to the keys a
	// notification names, and a key makes a bucket of one object.
	for _, param := range []string{"prefix", "key"} {
		if u.Query().Has(param) {
			return fmt.Errorf("%s %q: %s= is not taken here: give the prefix as the input's prefix (CURRENTS_PREFIX in the shipped configs) or the bucket output's path",
				field, Name(raw), param)
		}
	}
	if err := checkSettings(u); err != nil {
		return fmt.Errorf("%s %q: %w", field, Name(raw), cleanOpenError(raw, raw, err))
	}
	return nil
}

// checkSettings opens the bucket at u with its driver's own URL opener,
// given clients that hold no credentials and send no request, so that the
// driver, not a list of ours, judges the URL's settings at startup: opened
// only when Connect first connects, a typo (s3://b?regin=…) failed every
// attempt, retried for ever. Credentials and the network are left to
// Connect, which retries an outage. file:// is opened by CheckLocalDir.
func checkSettings(u *url.URL) error {
	var opener blob.BucketURLOpener
	switch u.Scheme {
	case s3blob.Scheme:
		// Reads the AWS config (environment, shared files); the
		// credentials are fetched at the first request.
		opener = &s3blob.URLOpener{}
	case gcsblob.Scheme:
		// The token is never sent. grpc=true builds a gRPC client, whose
		// metrics would ask the metadata server for the project and which
		// may start connecting: no metrics, and an endpoint off the network.
		opener = &gcsblob.URLOpener{Client: &gcp.HTTPClient{}, TokenSource: oauth2.StaticTokenSource(&oauth2.Token{}),
			Options: gcsblob.Options{ClientOptions: []option.ClientOption{storage.WithDisabledClientMetrics(),
				option.WithEndpoint("unix:///nonexistent/checking-a-bucket-url")}}}
	case azureblob.Scheme:
		opener = &azureblob.URLOpener{ServiceURLOptions: *azureblob.NewDefaultServiceURLOptions(),
			MakeClient: func(svc azureblob.ServiceURL, name azureblob.ContainerName) (*container.Client, error) {
				containerURL, err := url.JoinPath(string(svc), string(name))
				if err != nil {
					return nil, err
				}
				return container.NewClientWithNoCredential(containerURL, nil)
			}}
	default:
		return nil
	}
	bucket, err := opener.OpenBucketURL(context.Background(), u)
	if err != nil {
		// The driver names its Go option (Options.AccountName), not what to set.
		if u.Scheme == azureblob.Scheme && strings.Contains(err.Error(), "AccountName is required") {
			return errors.New("no storage account: set AZURE_STORAGE_ACCOUNT, or add ?storage_account=<account> to the URL")
		}
		return err
	}
	if err := bucket.Close(); err != nil {
		return err
	}
	if u.Scheme == s3blob.Scheme {
		return checkS3Region(u)
	}
	return nil
}

// checkS3Region refuses an s3 URL when neither it (region=) nor the AWS
// config it reads (AWS_REGION, the profile's region) gives a region: the SDK
// guesses none, not even on EC2, and every request would fail ("Invalid
// region"), retried for ever. An endpoint= of the URL's own (MinIO, Ceph,
// R2) takes requests with no region: the driver sends them there without
// the SDK's endpoint rules, which are what want one. AWS's own endpoints
// (amazonaws.com, a VPC endpoint's) refuse a request signed for no region.
func checkS3Region(u *url.URL) error {
	q := u.Query()
	if q.Get("region") != "" {
		return nil
	}
	if endpoint := q.Get("endpoint"); endpoint != "" {
		host := ""
		if e, err := url.Parse(endpoint); err == nil {
			host = e.Hostname()
		}
		if !strings.HasSuffix(host, ".amazonaws.com") && !strings.HasSuffix(host, ".amazonaws.com.cn") {
			return nil
		}
	}
	params := url.Values{}
	if profile := q.Get("profile"); profile != "" {
		params.Set("profile", profile)
	}
	cfg, err := gcaws.V2ConfigFromURLParams(context.Background(), params)
	if err != nil || cfg.Region != "" {
		return nil // an error the opener reported already
	}
	return errors.New("no AWS region: add ?region=<the bucket's region> to the URL, or set AWS_REGION")
}

// CheckLocalDir opens a file:// bucket: a directory that does not exist is
// a wrong URL, and waiting will not make it appear, unlike a cloud bucket in
// an outage, which Connect retries. Other schemes pass unopened.
func CheckLocalDir(ctx context.Context, field, raw string) error {
	if u, err := url.Parse(raw); err != nil || u.Scheme != fileblob.Scheme {
		return nil
	}
	bucket, err := Open(ctx, raw)
	if err != nil {
		return fmt.Errorf("%s %q: %w", field, Name(raw), err)
	}
	return bucket.Close()
}

// Open opens the bucket at raw. A file:// bucket keeps the temporary file of
// an object being written beside it (fileblob's no_tmp_dir): in os.TempDir,
// often another filesystem than a mounted volume, the rename that stores the
// object would fail. The error quotes the bucket by Name, not the URL
// whole with its user:password@ and query as the driver's message does;
// callers say what they were opening.
func Open(ctx context.Context, raw string) (*blob.Bucket, error) {
	open := raw
	if u, err := url.Parse(raw); err == nil && u.Scheme == fileblob.Scheme && !u.Query().Has("no_tmp_dir") {
		sep := "?"
		if strings.Contains(raw, "?") {
			sep = "&"
		}
		open += sep + "no_tmp_dir=true"
	}
	bucket, err := blob.OpenBucket(ctx, open)
	if err != nil {
		return nil, cleanOpenError(raw, open, err)
	}
	return bucket, nil
}

// LocalDir is the absolute directory of a file:// bucket, as fileblob
// resolves it, and "" for any other bucket.
func LocalDir(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != fileblob.Scheme {
		return ""
	}
	dir := u.Path
	if u.Host == "." {
		dir = strings.TrimPrefix(dir, "/")
	}
	abs, err := filepath.Abs(filepath.FromSlash(dir))
	if err != nil {
		return ""
	}
	return abs
}

// cleanOpenError is err, from opening the bucket at open (raw, as the
// config wrote it, with settings of ours), quoting the bucket by Name: a
// driver's message quotes the URL whole, user:password@ and query. The
// callers' messages name the bucket already, so its "open bucket" prefix
// goes too.
func cleanOpenError(raw, open string, err error) error {
	// Drivers quote the URL as url.URL prints it, which may escape
	// differently from what the config wrote.
	msg := strings.ReplaceAll(err.Error(), open, Name(raw))
	if u, perr := url.Parse(open); perr == nil {
		msg = strings.ReplaceAll(msg, u.String(), Name(raw))
	}
	msg = strings.TrimPrefix(msg, "open bucket "+Name(raw)+": ")
	return Redact(redact.Error(msg, err))
}

// Name is a bucket URL without its query, which may hold settings (an
// endpoint, a key path) that have no place in a log line.
func Name(raw string) string {
	name, _, _ := strings.Cut(raw, "?")
	// user:password@ before the host would be a credential: drop it too.
	if scheme, rest, ok := strings.Cut(name, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 && !strings.Contains(rest[:at], "/") {
			name = scheme + "://" + rest[at+1:]
		}
	}
	return name
}

// signedParam is a query parameter, in a request URL that a driver's error
// quotes, whose value signs the request: the sig of AZURE_STORAGE_SAS_TOKEN
// (azblob appends the token to every request, and a network error quotes
// the URL whole), or a presigned S3 or GCS URL's signature and credential.
var signedParam = regexp.MustCompile(`(?i)([?&](?:sig|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|signature)=)[^&"\s]*`)

// Redact is err with the request signatures its text may quote written
// xxxxx; errors.Is, errors.As and gcerrors.Code still see err. It returns
// nil for nil.
func Redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := signedParam.ReplaceAllString(msg, "${1}xxxxx")
	if clean == msg {
		return err
	}
	return redact.Error(clean, err)
}
