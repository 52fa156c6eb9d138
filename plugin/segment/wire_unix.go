//go:build unix

package segment

import (
	"net"
	"syscall"
)

// socketQuiet says whether nothing waits to be read on conn's socket, not
// even its end, without waiting for anything.
func socketQuiet(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	quiet := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		quiet = err == syscall.EAGAIN
		return true // never wait
	})
	return err == nil && quiet
}
