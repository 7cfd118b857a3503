package health

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ICMP probes with ICMP echo requests over a raw socket (root, as egress-agent runs), which the
// probed node's kernel answers. Every echo carries a random identifier and nonce, and only a
// reply echoing both counts (the raw socket sees every echo reply of the namespace, another
// process's pings too). Safe for concurrent use.
type ICMP struct {
	conn  net.PacketConn
	id    uint16
	nonce [8]byte

	mu      sync.Mutex
	seq     uint16
	waiting map[uint16]chan netip.Addr
}

// NewICMP opens the raw socket and starts reading answers.
func NewICMP() (*ICMP, error) {
	conn, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, err
	}
	t := &ICMP{conn: conn, waiting: map[uint16]chan netip.Addr{}}
	var random [10]byte
	if _, err := rand.Read(random[:]); err != nil {
		conn.Close()
		return nil, err
	}
	t.id = binary.BigEndian.Uint16(random[:2])
	copy(t.nonce[:], random[2:])
	go t.read()
	return t, nil
}

// Close closes the socket.
func (t *ICMP) Close() error { return t.conn.Close() }

func (t *ICMP) read() {
	buf := make([]byte, 1500)
	for {
		n, from, err := t.conn.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n < 16 {
			continue
		}
		// Echo reply (type 0, code 0) with our identifier and nonce.
		if buf[0] != 0 || buf[1] != 0 || binary.BigEndian.Uint16(buf[4:6]) != t.id || !bytes.Equal(buf[8:16], t.nonce[:]) {
			continue
		}
		seq := binary.BigEndian.Uint16(buf[6:8])
		ip, ok := from.(*net.IPAddr)
		if !ok {
			continue
		}
		addr, ok := netip.AddrFromSlice(ip.IP.To4())
		if !ok {
			continue
		}
		t.mu.Lock()
		ch := t.waiting[seq]
		t.mu.Unlock()
		if ch != nil {
			select {
			case ch <- addr:
			default:
			}
		}
	}
}

// echo is an ICMP echo request carrying nonce.
func echo(id, seq uint16, nonce [8]byte) []byte {
	msg := make([]byte, 16)
	msg[0] = 8 // echo request
	binary.BigEndian.PutUint16(msg[4:6], id)
	binary.BigEndian.PutUint16(msg[6:8], seq)
	copy(msg[8:], nonce[:])
	binary.BigEndian.PutUint16(msg[2:4], checksum(msg))
	return msg
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Probe sends one echo request to addr and waits for its reply from addr.
func (t *ICMP) Probe(addr netip.Addr, timeout time.Duration) bool {
	ch := make(chan netip.Addr, 1)
	t.mu.Lock()
	t.seq++
	seq := t.seq
	t.waiting[seq] = ch
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.waiting, seq)
		t.mu.Unlock()
	}()
	if _, err := t.conn.WriteTo(echo(t.id, seq, t.nonce), &net.IPAddr{IP: addr.AsSlice()}); err != nil {
		return false
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case from := <-ch:
			if from == addr {
				return true
			}
		case <-timer.C:
			return false
		}
	}
}
