package brazecurrents

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// keyPair serves the certificate of cert_file and key_file, loaded again
// when either file changes: a certificate renewed in place (cert-manager,
// certbot) is served from the next handshake, where it was served only
// after a restart, and the old one until it expired and Braze's calls
// failed.
type keyPair struct {
	certFile, keyFile string
	log               *service.Logger

	mu     sync.Mutex
	cert   *tls.Certificate
	loaded [2]fileStamp // the files as last loaded, or tried
}

// fileStamp tells a file's versions apart.
type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{size: -1}
	}
	return fileStamp{fi.Size(), fi.ModTime()}
}

// loadKeyPair loads the pair, or fails naming both files.
func loadKeyPair(certFile, keyFile string, log *service.Logger) (*keyPair, error) {
	k := &keyPair{certFile: certFile, keyFile: keyFile, log: log}
	stamps := k.stamps()
	cert, err := k.load()
	if err != nil {
		return nil, err
	}
	k.cert, k.loaded = cert, stamps
	return k, nil
}

func (k *keyPair) stamps() [2]fileStamp {
	return [2]fileStamp{stampOf(k.certFile), stampOf(k.keyFile)}
}

func (k *keyPair) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS %s %s and %s %s: %w", httpFieldCertFile, k.certFile, httpFieldKeyFile, k.keyFile, err)
	}
	return &cert, nil
}

// get is the tls.Config's GetCertificate. A pair that changed but does not
// load (a key not yet written beside its new certificate, say) leaves the
// last one served, and is warned of once for each change.
func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	stamps := k.stamps()
	if stamps == k.loaded {
		return k.cert, nil
	}
	k.loaded = stamps
	cert, err := k.load()
	if err != nil {
		k.log.Warnf("%v: serving the certificate loaded before", err)
		return k.cert, nil
	}
	k.cert = cert
	k.log.Infof("Loaded the TLS %s %s and %s %s again: they changed", httpFieldCertFile, k.certFile, httpFieldKeyFile, k.keyFile)
	return k.cert, nil
}
