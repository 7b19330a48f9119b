package amisim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// snapshotKeys is the channel snapshot block of AMI v2 events, in Asterisk's order
// (ast_manager_build_channel_state_string_prefix).
var snapshotKeys = [...]string{
	"Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
	"ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context", "Exten",
	"Priority", "Uniqueid", "Linkedid",
}

// liveChannel is what Asterisk would hold for a channel, as far as the played events tell.
type liveChannel struct {
	seq      uint64 // creation order
	created  time.Time
	snap     [len(snapshotKeys)]string
	app      string
	appData  string
	bridgeID string
}

// channelTable tracks the channels alive according to the events broadcast; Server.mu guards it.
type channelTable struct {
	seq  uint64
	byID map[string]*liveChannel // by Uniqueid
}

func newChannelTable() *channelTable {
	return &channelTable{byID: make(map[string]*liveChannel)}
}

// apply updates the table from one event. Keys are matched case-sensitively: CEL and Cdr use
// `UniqueID`/`CallerIDnum` and must not touch the snapshot.
func (t *channelTable) apply(m *ami.Message, now time.Time) {
	event := exactGet(m, "Event")
	switch event {
	case "Newchannel":
		uid := exactGet(m, "Uniqueid")
		if uid == "" {
			return
		}
		t.seq++
		ch := &liveChannel{seq: t.seq, created: now}
		ch.update(m, "")
		t.byID[uid] = ch
		return
	case "Hangup":
		delete(t.byID, exactGet(m, "Uniqueid"))
		return
	}
	// Every snapshot block (plain, Dest*, LocalOne*, Transferee*, ...) refreshes its channel.
	for _, h := range m.Headers {
		prefix, ok := strings.CutSuffix(h.Key, "Uniqueid")
		if !ok || strings.HasSuffix(prefix, "Bridge") || prefix == "Swap" {
			continue
		}
		ch := t.byID[h.Value]
		if ch == nil {
			continue
		}
		if _, has := exact(m, prefix+"Channel"); !has {
			continue
		}
		ch.update(m, prefix)
		if prefix != "" {
			continue
		}
		switch event {
		case "Newexten":
			ch.app = exactGet(m, "Application")
			ch.appData = exactGet(m, "AppData")
		case "BridgeEnter":
			ch.bridgeID = exactGet(m, "BridgeUniqueid")
		case "BridgeLeave":
			ch.bridgeID = ""
		case "Rename":
			if nn := exactGet(m, "Newname"); nn != "" {
				ch.snap[0] = nn
			}
		}
	}
}

// update copies the snapshot fields of the block with prefix.
func (ch *liveChannel) update(m *ami.Message, prefix string) {
	for i, k := range snapshotKeys {
		if v, ok := exact(m, prefix+k); ok {
			ch.snap[i] = v
		}
	}
}

func (t *channelTable) sorted() []*liveChannel {
	out := make([]*liveChannel, 0, len(t.byID))
	for _, ch := range t.byID {
		out = append(out, ch)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func (t *channelTable) names() []string {
	var out []string
	for _, ch := range t.sorted() {
		out = append(out, ch.snap[0])
	}
	return out
}

// list renders action_coreshowchannels' items: ActionID first, the snapshot, then Application,
// ApplicationData, Duration (age, HH:MM:SS) and BridgeId.
func (t *channelTable) list(actionID string, now time.Time) []*ami.Message {
	var out []*ami.Message
	for _, ch := range t.sorted() {
		m := &ami.Message{Headers: make([]ami.Header, 0, len(snapshotKeys)+6)}
		m.Add("Event", "CoreShowChannel")
		if actionID != "" {
			m.Add("ActionID", actionID)
		}
		for i, k := range snapshotKeys {
			m.Add(k, ch.snap[i])
		}
		d := int(now.Sub(ch.created) / time.Second)
		m.Add("Application", ch.app).Add("ApplicationData", ch.appData).
			Add("Duration", fmt.Sprintf("%02d:%02d:%02d", d/3600, d%3600/60, d%60)).
			Add("BridgeId", ch.bridgeID)
		out = append(out, m)
	}
	return out
}
