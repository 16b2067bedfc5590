package wal

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/flowdb/flowdb/internal/codec"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

const (
	checksumLen = 8
	// maxRatio bounds how much a compressed payload may expand. The encoder
	// stores a payload plainly rather than exceed it, and the decoder refuses
	// a frame that claims more, so decoding never allocates more than
	// maxRatio times the bytes it was given (plus ratioSlack).
	maxRatio   = 1024
	ratioSlack = 4 << 10
)

// EncodeOptions controls frame compression.
type EncodeOptions struct {
	// Compression used for payloads of at least Threshold bytes.
	Compression Compression
	// Threshold is the plain payload size from which compression is tried.
	// Zero means never compress.
	Threshold int
}

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
	zstdErr  error
)

func zstdCodecs() (*zstd.Encoder, *zstd.Decoder, error) {
	zstdOnce.Do(func() {
		zstdEnc, zstdErr = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		if zstdErr != nil {
			return
		}
		zstdDec, zstdErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderMaxMemory(MaxFrameBytes))
	})
	return zstdEnc, zstdDec, zstdErr
}

// PayloadSize returns the plain payload size of f, the figure compared with
// EncodeOptions.Threshold and MaxFrameBytes.
func PayloadSize(f *Frame) int {
	n := uvarintLen(f.Origin.ID) + uvarintLen(f.Origin.Seq) + varintLen(f.Time) +
		uvarintLen(uint64(len(f.Records)))
	for i := range f.Records {
		n += RecordSize(&f.Records[i])
	}
	return n
}

// RecordSize is the encoded size of one record inside a frame.
func RecordSize(r *Record) int {
	return uvarintLen(uint64(r.Kind)) + uvarintLen(uint64(len(r.Body))) + len(r.Body)
}

// AppendFrame appends the encoding of f to dst and returns the extended
// buffer. scratch, if non-nil, is reused for the plain payload when the frame
// is compressed; the possibly grown scratch buffer is returned so callers can
// keep it.
func AppendFrame(dst []byte, f *Frame, opts EncodeOptions, scratch []byte) ([]byte, []byte, error) {
	for i := range f.Records {
		if len(f.Records[i].Body) > MaxRecordBody {
			return dst, scratch, ErrTooLarge
		}
		if f.Records[i].Kind == 0 {
			return dst, scratch, corruptf("record %d has kind 0", i)
		}
	}
	plainLen := PayloadSize(f)
	if plainLen > MaxFrameBytes {
		return dst, scratch, ErrTooLarge
	}
	if opts.Compression == CompressNone || opts.Threshold <= 0 || plainLen < opts.Threshold {
		return appendPlain(dst, f, plainLen), scratch, nil
	}

	scratch = appendPayload(scratch[:0], f)
	var comp []byte
	var flag byte
	switch opts.Compression {
	case CompressS2:
		flag = flagS2
		comp = s2.Encode(nil, scratch)
	case CompressZstd:
		enc, _, err := zstdCodecs()
		if err != nil {
			return dst, scratch, err
		}
		flag = flagZstd
		comp = enc.EncodeAll(scratch, nil)
	default:
		return dst, scratch, corruptf("unknown compression %d", opts.Compression)
	}
	stored := uvarintLen(uint64(plainLen)) + len(comp)
	if stored >= plainLen || plainLen > maxRatio*stored+ratioSlack {
		// Not worth it, or so compressible that the decoder's expansion
		// bound would refuse it: store plainly.
		return appendPlain(dst, f, plainLen), scratch, nil
	}
	start := len(dst)
	dst = append(dst, Version, flag)
	dst = binary.AppendUvarint(dst, uint64(stored))
	dst = binary.AppendUvarint(dst, uint64(plainLen))
	dst = append(dst, comp...)
	dst = binary.LittleEndian.AppendUint64(dst, xxhash.Sum64(dst[start:]))
	return dst, scratch, nil
}

func appendPlain(dst []byte, f *Frame, plainLen int) []byte {
	start := len(dst)
	dst = append(dst, Version, 0)
	dst = binary.AppendUvarint(dst, uint64(plainLen))
	dst = appendPayload(dst, f)
	return binary.LittleEndian.AppendUint64(dst, xxhash.Sum64(dst[start:]))
}

func appendPayload(dst []byte, f *Frame) []byte {
	dst = binary.AppendUvarint(dst, f.Origin.ID)
	dst = binary.AppendUvarint(dst, f.Origin.Seq)
	dst = binary.AppendVarint(dst, f.Time)
	dst = binary.AppendUvarint(dst, uint64(len(f.Records)))
	for i := range f.Records {
		r := &f.Records[i]
		dst = binary.AppendUvarint(dst, uint64(r.Kind))
		dst = binary.AppendUvarint(dst, uint64(len(r.Body)))
		dst = append(dst, r.Body...)
	}
	return dst
}

// Decoder decodes frames, reusing a scratch buffer for decompression and the
// record slice of the destination frame. The zero value is ready to use. A
// Decoder is not safe for concurrent use.
type Decoder struct {
	scratch []byte
}

// Decode decodes one whole frame from buf into f, reusing f.Records. Record
// bodies alias buf, or the Decoder's scratch buffer when the frame was
// compressed; they stay valid until buf is modified or the Decoder decodes
// again. Any malformed input yields an error matching ErrCorrupt.
func (d *Decoder) Decode(buf []byte, f *Frame) error {
	if len(buf) < 2+1+checksumLen {
		return corruptf("frame of %d bytes is too short", len(buf))
	}
	if buf[0] != Version {
		return corruptf("unknown version %d", buf[0])
	}
	flags := buf[1]
	if flags&^flagMask != 0 || flags == flagMask {
		return corruptf("bad flags %#x", flags)
	}
	storedLen, n := binary.Uvarint(buf[2:])
	if n <= 0 {
		return corruptf("bad length")
	}
	body := buf[2+n:]
	if len(body) < checksumLen || storedLen != uint64(len(body)-checksumLen) {
		return corruptf("length %d does not match %d bytes present", storedLen, len(body)-checksumLen)
	}
	end := len(buf) - checksumLen
	if want, got := binary.LittleEndian.Uint64(buf[end:]), xxhash.Sum64(buf[:end]); want != got {
		return corruptf("checksum mismatch: stored %#x, computed %#x", want, got)
	}
	payload := body[:storedLen]
	if flags != 0 {
		plainLen, m := binary.Uvarint(payload)
		if m <= 0 {
			return corruptf("bad plain length")
		}
		comp := payload[m:]
		if plainLen > MaxFrameBytes || plainLen > uint64(maxRatio*len(payload)+ratioSlack) {
			return corruptf("plain length %d exceeds bound for %d stored bytes", plainLen, len(payload))
		}
		if cap(d.scratch) < int(plainLen) {
			d.scratch = make([]byte, 0, plainLen)
		}
		var out []byte
		var err error
		switch flags {
		case flagS2:
			var dl int
			dl, err = s2.DecodedLen(comp)
			if err == nil && dl != int(plainLen) {
				return corruptf("s2 length %d, header says %d", dl, plainLen)
			}
			if err == nil {
				out, err = s2.Decode(d.scratch[:plainLen], comp)
			}
		case flagZstd:
			_, dec, zerr := zstdCodecs()
			if zerr != nil {
				return zerr
			}
			out, err = dec.DecodeAll(comp, d.scratch[:0])
		}
		if err != nil {
			return corruptf("decompress: %v", err)
		}
		if len(out) != int(plainLen) {
			return corruptf("decompressed %d bytes, header says %d", len(out), plainLen)
		}
		d.scratch = out[:0]
		payload = out
	}
	return decodePayload(payload, f)
}

// Equal reports whether f and g hold the same origin, time and records.
func (f *Frame) Equal(g *Frame) bool {
	if f.Origin != g.Origin || f.Time != g.Time || len(f.Records) != len(g.Records) {
		return false
	}
	for i := range f.Records {
		if f.Records[i].Kind != g.Records[i].Kind || !bytes.Equal(f.Records[i].Body, g.Records[i].Body) {
			return false
		}
	}
	return true
}

// DecodeFrame decodes buf into a new Frame. It is a convenience over
// Decoder.Decode; record bodies may alias buf.
func DecodeFrame(buf []byte) (*Frame, error) {
	var d Decoder
	f := &Frame{}
	if err := d.Decode(buf, f); err != nil {
		return nil, err
	}
	return f, nil
}

func decodePayload(p []byte, f *Frame) error {
	var ok bool
	if f.Origin.ID, p, ok = codec.Uvarint(p); !ok {
		return corruptf("bad origin")
	}
	if f.Origin.Seq, p, ok = codec.Uvarint(p); !ok {
		return corruptf("bad sequence")
	}
	var t int64
	if t, p, ok = codec.Varint(p); !ok {
		return corruptf("bad time")
	}
	f.Time = t
	count, p, ok := codec.Uvarint(p)
	if !ok {
		return corruptf("bad record count")
	}
	// Each record takes at least two bytes, so a count above len(p)/2 cannot
	// be honest: refuse before allocating for it.
	if count > uint64(len(p)/2) {
		return corruptf("record count %d exceeds %d bytes", count, len(p))
	}
	if cap(f.Records) < int(count) {
		f.Records = make([]Record, count)
	}
	f.Records = f.Records[:count]
	for i := range f.Records {
		var kind, blen uint64
		if kind, p, ok = codec.Uvarint(p); !ok || kind == 0 || kind > 0xffff {
			return corruptf("record %d: bad kind", i)
		}
		if blen, p, ok = codec.Uvarint(p); !ok || blen > uint64(len(p)) {
			return corruptf("record %d: bad body length", i)
		}
		f.Records[i] = Record{Kind: Kind(kind), Body: p[:blen:blen]}
		p = p[blen:]
	}
	if len(p) != 0 {
		return corruptf("%d trailing payload bytes", len(p))
	}
	return nil
}

func uvarintLen(v uint64) int { return codec.UvarintLen(v) }

func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}
