package callflow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/connector-bx/bitrix"
)

// asteriskMonitor is where Asterisk writes recordings by default; an absolute name under it is
// looked up under the configured folder (which is that folder, mounted elsewhere).
const asteriskMonitor = "/var/spool/asterisk/monitor/"

// missingFor is how long after a call ended a recording that is not there yet is waited for
// (MixMonitor closes the file at hangup, a copy to a share may take longer); after it the
// recording is given up, reported, and the call stays in Bitrix24 without it.
const missingFor = 10 * time.Minute

// attach attaches the call's recording after finish (Bitrix24 takes it only then): by URL when
// recordings.url_base is set, else the file from recordings.folder, inside the request when small
// and through the upload URL when big. Done once: the state records it.
func (c *callTx) attach(ctx context.Context) error {
	ev, st, rc := c.ev, c.st, c.f.cfg.Recordings
	if st.Attached || st.AttachSkipped != "" || ev.Recording == "" || st.CallID == "" {
		return nil
	}
	skip := func(why string, err error) error {
		st.AttachSkipped = why
		c.f.m.records.WithLabelValues("skipped").Inc()
		l := c.log.WithField("recording", ev.Recording)
		if err != nil {
			l = l.WithError(err)
		}
		l.Warn("recording not attached: " + why)
		return c.save(ctx)
	}
	if rc.Folder == "" && rc.URLBase == "" {
		st.AttachSkipped = "recordings are not configured"
		return c.save(ctx)
	}
	name := path.Base(filepath.ToSlash(ev.Recording))
	if ext := strings.ToLower(path.Ext(name)); ext != ".wav" && ext != ".mp3" {
		return skip("Bitrix24 takes only .wav and .mp3 files (convert the recordings, e.g. MixMonitor to .wav)", nil)
	}
	var err error
	if rc.URLBase != "" {
		_, err = c.f.crm.AttachRecordURL(ctx, st.CallID, name, recordURL(rc.URLBase, ev.Recording))
	} else {
		var content []byte
		content, err = readRecording(rc.Folder, ev.Recording)
		switch {
		case errors.Is(err, fs.ErrNotExist) && c.endedAgo() < missingFor:
			return fmt.Errorf("recording %s of call %s is not there yet (will try again): %w", ev.Recording, ev.CallID, err)
		case err != nil:
			return skip("cannot read the file", err)
		case len(content) <= rc.InlineMax:
			_, err = c.f.crm.AttachRecordContent(ctx, st.CallID, name, content)
		default:
			_, err = c.f.crm.AttachRecordUpload(ctx, st.CallID, name, content)
		}
	}
	if err != nil {
		if bitrix.IsPermanent(err) {
			return skip("Bitrix24 refused it", err)
		}
		return fmt.Errorf("attach the recording of call %s: %w", ev.CallID, err)
	}
	st.Attached = true
	c.f.m.records.WithLabelValues("attached").Inc()
	c.log.WithField("recording", name).Info("recording attached in Bitrix24")
	return c.save(ctx)
}

func (c *callTx) endedAgo() time.Duration {
	end := c.ev.At
	if c.ev.EndedAt != nil {
		end = *c.ev.EndedAt
	}
	return c.f.now().Sub(end)
}

// recordURL is url_base + the recording's path, each segment escaped.
func recordURL(base, rec string) string {
	rel := strings.TrimPrefix(filepath.ToSlash(rec), asteriskMonitor)
	rel = strings.TrimLeft(rel, "/")
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.TrimRight(base, "/") + "/" + strings.Join(segs, "/")
}

// readRecording reads a recording from the folder. The name comes from the call event, so it is
// confined to the folder: no absolute path elsewhere, no "..".
func readRecording(folder, rec string) ([]byte, error) {
	rel := filepath.ToSlash(rec)
	if strings.HasPrefix(rel, "/") {
		if r, ok := strings.CutPrefix(rel, asteriskMonitor); ok {
			rel = r
		} else if r, ok := strings.CutPrefix(rel, strings.TrimRight(filepath.ToSlash(folder), "/")+"/"); ok {
			rel = r
		} else {
			rel = path.Base(rel)
		}
	}
	clean := path.Clean("/" + rel)[1:]
	if clean == "" || !fs.ValidPath(clean) {
		return nil, fmt.Errorf("recording name %q is not a file name", rec)
	}
	root, err := os.OpenRoot(folder)
	if err != nil {
		return nil, fmt.Errorf("recordings folder: %w", err)
	}
	defer root.Close()
	return root.ReadFile(clean)
}
