package amisim

import (
	"context"
	"fmt"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// Player plays one recording on a Server in steps, so a test can stop at a chosen packet (kill
// the gateway mid-call), look around, and resume. A Player is not safe for concurrent use; many
// Players may run at once on one Server (overlapping calls), and their packets never interleave
// mid-packet.
type Player struct {
	srv   *Server
	rec   *Recording
	speed float64
	pos   int
}

// NewPlayer returns a Player of rec at speed: offsets are divided by speed (2 = twice as fast);
// speed <= 0 plays as fast as possible, without sleeping.
func (s *Server) NewPlayer(rec *Recording, speed float64) *Player {
	return &Player{srv: s, rec: rec, speed: speed}
}

// Pos is the index of the next packet to play (the number played so far).
func (p *Player) Pos() int { return p.pos }

// Done tells whether every packet has been played.
func (p *Player) Done() bool { return p.pos >= len(p.rec.Packets) }

// Step plays the next n packets (fewer at the end).
func (p *Player) Step(ctx context.Context, n int) error {
	end := min(p.pos+n, len(p.rec.Packets))
	return p.play(ctx, func(i int, _ *ami.Message) bool { return i >= end })
}

// PlayUntil plays packets until stop(i, m) is true for the next one, which is not played (it
// will be the first of the next call), or to the end.
func (p *Player) PlayUntil(ctx context.Context, stop func(i int, m *ami.Message) bool) error {
	return p.play(ctx, stop)
}

// Rest plays the remaining packets.
func (p *Player) Rest(ctx context.Context) error {
	return p.play(ctx, func(int, *ami.Message) bool { return false })
}

// play paces from the first packet of this call: a resumed playback starts at once and keeps the
// recorded gaps from there. Before returning it waits until the packets are written to every
// client socket (Flush), so what a test does next happens after the client could read them.
func (p *Player) play(ctx context.Context, stop func(int, *ami.Message) bool) error {
	pkts := p.rec.Packets
	if p.pos >= len(pkts) {
		return nil
	}
	anchor := time.Now()
	base := pkts[p.pos].Offset
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for p.pos < len(pkts) {
		pk := pkts[p.pos]
		if stop(p.pos, pk.Msg) {
			break
		}
		if p.speed > 0 {
			due := anchor.Add(time.Duration(float64(pk.Offset-base) / p.speed))
			if wait := time.Until(due); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-timer.C:
				case <-ctx.Done():
					return fmt.Errorf("amisim: playing %s at packet %d: %w", p.rec.Name, p.pos, ctx.Err())
				case <-p.srv.done:
					return ErrClosed
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("amisim: playing %s at packet %d: %w", p.rec.Name, p.pos, err)
		}
		select {
		case <-p.srv.done:
			return ErrClosed
		default:
		}
		p.srv.Broadcast(pk.Msg)
		p.pos++
	}
	if err := p.srv.Flush(ctx); err != nil {
		return fmt.Errorf("amisim: playing %s: %w", p.rec.Name, err)
	}
	return nil
}

// Play sends every packet of rec to the logged-in sessions, paced by speed (see NewPlayer), and
// returns when all are written. Several Plays may run at once.
func (s *Server) Play(ctx context.Context, rec *Recording, speed float64) error {
	return s.NewPlayer(rec, speed).Rest(ctx)
}

// PlayAll plays several recordings on one timeline, each starting At after the start (see
// Merge); with speed <= 0 the merged order is kept but nothing sleeps.
func (s *Server) PlayAll(ctx context.Context, calls []Scheduled, speed float64) error {
	return s.Play(ctx, Merge("all", calls), speed)
}
