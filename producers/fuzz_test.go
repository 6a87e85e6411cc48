package producers

import (
	"bytes"
	"testing"

	"github.com/visrec/visrec/events"
)

// checkParsed: whatever a parser accepts is a valid event that survives both encodings.
func checkParsed(t *testing.T, e events.Interaction, err error) {
	t.Helper()
	if err != nil {
		return
	}
	if verr := e.Validate(); verr != nil {
		t.Fatalf("parser accepted an invalid event %+v: %v", e, verr)
	}
	for _, b := range [][]byte{e.AppendJSON(nil), e.AppendBinary(nil)} {
		back, derr := events.DecodeInteraction(b)
		if derr != nil {
			t.Fatalf("accepted event %+v does not decode: %v", e, derr)
		}
		if back.User != e.User || back.Item != e.Item || back.Timestamp != e.Timestamp || back.Type != e.Type {
			t.Fatalf("round trip %+v -> %+v", e, back)
		}
	}
}

func FuzzCSVLine(f *testing.F) {
	f.Add("user,item,ts,type,value,id", `u1,"i,1",1700000000000,click,1.5,e1`)
	f.Add("userId,movieId,rating,timestamp", "1,2,3.5,964982703")
	f.Add("ts,user,item", `5,"a""b",x`)
	f.Add("user,item,ts,value", "u,i,1,NaN")
	f.Add("user,item,ts", `"unterminated,i,1`)
	f.Fuzz(func(t *testing.T, header, line string) {
		for _, v := range []variant{varCSV, varMovieLensCSV} {
			p := lineParser{v: v}
			if p.header([]byte(header)) != nil {
				continue
			}
			e, err := p.parse([]byte(line))
			checkParsed(t, e, err)
			p.seconds = true
			e, err = p.parse([]byte(line))
			checkParsed(t, e, err)
		}
	})
}

func FuzzJSONLLine(f *testing.F) {
	f.Add(`{"v":1,"type":"view","user":"u","item":"i","ts":1}`)
	f.Add(`{"type":"rating","user":"u","item":"i","ts":1,"value":4.5,"id":"x"}`)
	f.Add(`  {"type":"rating"}  `)
	f.Add("\xb1\x01\x01\x00")
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, line string) {
		p := lineParser{v: varJSONL, intern: newInterner(4)}
		e, err := p.parse([]byte(line))
		checkParsed(t, e, err)
	})
}

func FuzzMovieLensLine(f *testing.F) {
	f.Add("196\t242\t3\t881250949")
	f.Add("1::1193::5::978300760")
	f.Add("1::1193::5::978300760::")
	f.Add("1\t2\t3")
	f.Fuzz(func(t *testing.T, line string) {
		for _, v := range []variant{varMovieLensUData, varMovieLensDat} {
			p := lineParser{v: v}
			e, err := p.parse([]byte(line))
			checkParsed(t, e, err)
		}
	})
}

// FuzzLogStream feeds whole files through detection, the line reader and the parsers.
func FuzzLogStream(f *testing.F) {
	f.Add("userId,movieId,rating,timestamp\n1,2,3.5,10\n1,2,x,11\n", uint8(0))
	f.Add("1::2::3::4\r\n5::6::7::8", uint8(1))
	f.Add("user,item,ts\n\"a\",b,3\n\n", uint8(2))
	f.Add("{\"type\":\"view\",\"user\":\"u\",\"item\":\"i\",\"ts\":1}\n{", uint8(3))
	f.Fuzz(func(t *testing.T, content string, format uint8) {
		opts := LogOptions{Format: Format(format % 4), SkipBad: true, MaxLineBytes: 64, AssumeSorted: format&4 != 0}
		s, err := NewLogStream(bytes.NewReader([]byte(content)), "fuzz.log", opts)
		if err != nil {
			return
		}
		n := 0
		for e := range All(s) {
			if e.Validate() != nil {
				t.Fatalf("invalid event %+v", e)
			}
			n++
		}
		st := s.Stats()
		if n != st.Events || st.Events+st.Skipped > st.Lines {
			t.Fatalf("%d events delivered, stats %+v", n, st)
		}
	})
}
