// A post's files (F-POST-7, docs/api.md "File previews"): images and PDFs show the thumbnail the
// worker made, an image opens in a viewer, every file stays downloadable. The API wants the bearer
// token in a header, which an <img src> cannot send, so images are fetched and shown from blob URLs.
// A live `attachment.previewed` event replaces a file's "preview coming" placeholder on every copy
// of the post on the page.

import { ApiError, auth, download } from './api.js';
import { formatBytes, formatNumber, h, icon, toast } from './dom.js';
import * as live from './live.js';
import { session } from './session.js';

// Blob URLs of thumbnails already fetched, by org and attachment: a feed re-rendered does not fetch again.
const thumbnails = new Map();
const MAX_KEPT = 300;

async function blobUrl(path) {
  const response = await fetch(`/api/v1${path}`, { headers: { authorization: `Bearer ${auth.token}` } });
  if (!response.ok) throw new ApiError(response.status, 'image_failed', `The image could not be loaded (${response.status}).`);
  return URL.createObjectURL(await response.blob());
}

function thumbnailUrl(attachmentId) {
  const key = `${session.org.slug}/${attachmentId}`;
  let url = thumbnails.get(key);
  if (!url) {
    url = blobUrl(session.orgPath(`/attachments/${attachmentId}/preview`));
    url.catch(() => thumbnails.delete(key));
    thumbnails.set(key, url);
    if (thumbnails.size > MAX_KEPT) {
      const [oldest, promise] = thumbnails.entries().next().value;
      thumbnails.delete(oldest);
      promise.then((u) => URL.revokeObjectURL(u), () => {});
    }
  }
  return url;
}

const isPdf = (a) => a.page_count != null || a.content_type === 'application/pdf';

function downloadButton(a) {
  const button = h('button', { type: 'button', class: 'attachment' }, icon('clip'), a.filename, h('span', { class: 'muted small' }, ` ${formatBytes(a.size)}`));
  button.addEventListener('click', async () => {
    try {
      await download(session.orgPath(`/attachments/${a.id}`), a.filename);
    } catch (err) {
      toast(err.message, 'error');
    }
  });
  return button;
}

function thumbnail(a) {
  const { width, height } = a.preview;
  const label = isPdf(a) ? `First page of ${a.filename}` : `Open ${a.filename}`;
  const img = h('img', { class: 'thumbnail', alt: a.filename, width, height, decoding: 'async' });
  const open = h('button', { type: 'button', class: 'thumbnail-button', 'aria-label': label, title: label }, img);
  thumbnailUrl(a.id).then((url) => { img.src = url; }, () => { open.classList.add('broken'); });
  open.addEventListener('click', () => {
    if (isPdf(a)) download(session.orgPath(`/attachments/${a.id}`), a.filename).catch((err) => toast(err.message, 'error'));
    else openViewer(a);
  });
  return open;
}

/** One file of a post: its thumbnail (or a placeholder while the worker makes it) and its download. */
export function renderAttachment(a) {
  const state = a.preview?.state;
  const li = h('li', { class: ['attachment-item', state && `preview-${state}`], dataset: { attachmentId: String(a.id) } });
  if (state === 'ready') li.append(thumbnail(a));
  else if (state === 'pending') li.append(h('span', { class: 'thumbnail-placeholder muted small', role: 'status' }, 'Preview coming…'));
  const facts = [];
  if (a.page_count != null) facts.push(`${formatNumber(a.page_count)} page${a.page_count === 1 ? '' : 's'}`);
  else if (a.width != null && a.height != null) facts.push(`${a.width} × ${a.height}`);
  li.append(h('div', { class: 'attachment-line' }, downloadButton(a), facts.length ? h('span', { class: 'muted small attachment-facts' }, ` ${facts.join(' · ')}`) : null));
  return li;
}

/** The list of a post's files, or null when it has none. */
export function renderAttachments(post) {
  if (!post.attachments?.length) return null;
  return h('ul', { class: 'attachments', 'aria-label': 'Attachments' }, post.attachments.map(renderAttachment));
}

/** The image viewer: the original, fetched with the token, in a modal dialog. */
export async function openViewer(a) {
  const img = h('img', { class: 'viewer-image', alt: a.filename });
  const closeButton = h('button', { type: 'button', class: 'small' }, 'Close');
  const save = h('button', { type: 'button', class: 'small' }, 'Download');
  const dialog = h('dialog', { class: 'image-viewer panel', 'aria-label': a.filename },
    h('div', { class: 'page-head' }, h('h2', { class: 'viewer-title' }, a.filename), h('span', { class: 'spacer' }), save, closeButton),
    h('div', { class: 'viewer-body' }, img));
  let url = null;
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (url) URL.revokeObjectURL(url);
  });
  closeButton.addEventListener('click', () => dialog.close());
  save.addEventListener('click', () => download(session.orgPath(`/attachments/${a.id}`), a.filename).catch((err) => toast(err.message, 'error')));
  dialog.addEventListener('click', (event) => {
    if (event.target === dialog) dialog.close(); // a click on the backdrop
  });
  document.body.append(dialog);
  dialog.showModal();
  try {
    url = await blobUrl(session.orgPath(`/attachments/${a.id}/image`));
    if (dialog.open) img.src = url;
    else URL.revokeObjectURL(url);
  } catch (err) {
    toast(err.message, 'error');
    dialog.close();
  }
}

/** Show a file's new preview state wherever its post is on the page. */
export function applyPreview(postId, attachment) {
  for (const old of document.querySelectorAll(`[data-post-id="${postId}"] [data-attachment-id="${attachment.id}"]`)) {
    old.replaceWith(renderAttachment(attachment));
  }
}

live.onEvent((data) => {
  if (data.type === 'attachment.previewed') applyPreview(data.payload.post_id, data.payload.attachment);
});
