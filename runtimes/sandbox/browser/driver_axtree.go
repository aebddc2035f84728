package browser

import (
	"context"
	"fmt"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// mergedAXTree is the page's accessibility tree with the trees of its
// frames hung under their <iframe> nodes, as BrowserGym's
// extract_merged_axtree: Chromium gives one tree per frame. A frame's node
// ids get the frame id as a prefix so that they cannot clash. Frames that
// live in another process (cross-origin) are left out.
func mergedAXTree(ctx context.Context) ([]*accessibility.Node, error) {
	root, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		return nil, fmt.Errorf("read the accessibility tree: %w", err)
	}
	nodes := root.Nodes
	tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil || tree.FrameTree == nil {
		return nodes, nil // the main frame's tree is still worth showing
	}
	var add func(ft *page.FrameTree)
	add = func(ft *page.FrameTree) {
		for _, child := range ft.ChildFrames {
			if child == nil || child.Frame == nil {
				continue
			}
			sub := frameAXTree(ctx, child.Frame.ID)
			if len(sub) == 0 {
				continue
			}
			owner, err := chromedp.Call(ctx, dom.GetFrameOwner, dom.GetFrameOwnerParams{FrameID: child.Frame.ID})
			if err != nil {
				continue
			}
			for _, n := range nodes {
				if n != nil && n.BackendDOMNodeID == owner.BackendNodeID {
					n.ChildIDs = append(n.ChildIDs, sub[0].NodeID)
					sub[0].ParentID = n.NodeID
					break
				}
			}
			nodes = append(nodes, sub...)
			add(child)
		}
	}
	add(tree.FrameTree)
	return nodes, nil
}

// frameAXTree is one frame's tree with prefixed node ids, or nil.
func frameAXTree(ctx context.Context, id cdp.FrameID) []*accessibility.Node {
	res, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{FrameID: id})
	if err != nil || len(res.Nodes) == 0 || res.Nodes[0] == nil {
		return nil
	}
	prefix := accessibility.NodeID(string(id) + "-")
	for _, n := range res.Nodes {
		if n == nil {
			continue
		}
		n.NodeID = prefix + n.NodeID
		if n.ParentID != "" {
			n.ParentID = prefix + n.ParentID
		}
		for i, c := range n.ChildIDs {
			n.ChildIDs[i] = prefix + c
		}
	}
	return res.Nodes
}
