package amisim_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/testsystem/amisim"
)

// A test plays a recorded call as a fresh call, stops it mid-call, and asks what is alive.
func Example() {
	srv := amisim.New(amisim.Config{Users: map[string]amisim.User{"crm": {Secret: "s3cret"}}})
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Close()
	rec, err := amisim.LoadRecording("testdata/inbound-answered.ami")
	if err != nil {
		panic(err)
	}
	call := rec.Fresh(1).Retime(time.Now())

	// The system under test would connect here; a raw client stands in for it.
	conn, _ := net.Dial("tcp", srv.Addr())
	defer conn.Close()
	rd := ami.NewReader(conn, ami.ReaderOptions{})
	banner, _ := rd.ReadBanner()
	conn.Write([]byte("Action: Login\r\nUsername: crm\r\nSecret: s3cret\r\n\r\n"))
	reply, _ := rd.ReadMessage()
	fmt.Println(banner, "/", reply.Get("Message"))

	ctx := context.Background()
	p := srv.NewPlayer(call, 0) // speed 0: no sleeping; 1 would take the call's real time
	p.PlayUntil(ctx, func(i int, m *ami.Message) bool { return m.Event() == "BridgeEnter" })
	fmt.Println("alive before the answer:", len(srv.LiveChannels()))
	p.Rest(ctx)
	fmt.Println("alive after the call:", len(srv.LiveChannels()))
	// Output:
	// Asterisk Call Manager/11.0.0 / Authentication accepted
	// alive before the answer: 4
	// alive after the call: 0
}
