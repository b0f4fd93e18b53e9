// Who is signed in, their orgs, and the org that is open, with small caches of the org's directory
// (members, roles, groups) for names and mention autocomplete.

import { api } from './api.js';

const listeners = new Set();

export const session = {
  me: null, // GET /me: user, orgs, default_org, needs_default_org, invitations
  org: null, // the open org: {slug, name, permissions, isAdmin, canManageGroups, userId}
  names: new Map(), // user id → name, in the open org

  onChange(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },

  changed() {
    for (const fn of listeners) fn();
  },

  async loadMe() {
    this.me = await api.get('/me');
    this.changed();
    return this.me;
  },

  /** The org to open after sign-in: the default one, unless the user must pick it (F-ORG-7). */
  homeSlug() {
    if (!this.me || this.me.needs_default_org) return null;
    return this.me.default_org?.slug || null;
  },

  async openOrg(slug) {
    const data = await api.get(`/orgs/${encodeURIComponent(slug)}`);
    const permissions = data.membership.permissions || [];
    this.org = {
      slug: data.org.slug,
      name: data.org.name,
      timeZone: data.org.time_zone,
      editWindowSeconds: data.org.edit_window_seconds, // null: no limit, 0: editing off (edits.js)
      permissions,
      isAdmin: permissions.includes('admin') || data.membership.is_super_admin,
      canManageGroups: permissions.includes('manage_groups'),
      userId: data.membership.user.id,
    };
    this.names = new Map([[this.org.userId, data.membership.user.name]]);
    this.groupsCache = null;
    this.rolesCache = null;
    return this.org;
  },

  clear() {
    this.me = null;
    this.org = null;
    this.names = new Map();
    this.groupsCache = null;
    this.rolesCache = null;
  },

  orgPath(path = '') {
    return `/orgs/${encodeURIComponent(this.org.slug)}${path}`;
  },

  async groups(refresh = false) {
    if (!this.groupsCache || refresh) this.groupsCache = (await api.get(this.orgPath('/groups'))).groups;
    return this.groupsCache;
  },

  async roles() {
    if (!this.rolesCache) this.rolesCache = (await api.get(this.orgPath('/roles'))).roles;
    return this.rolesCache;
  },

  async searchMembers(prefix, limit = 8) {
    const { members } = await api.get(this.orgPath('/members'), { q: prefix || undefined, limit });
    for (const m of members) this.names.set(m.user.id, m.user.name);
    return members.map((m) => m.user);
  },

  /** A member's name by id (fetched once, then remembered). */
  async userName(id) {
    if (id === null || id === undefined) return 'Someone';
    if (this.names.has(id)) return this.names.get(id);
    try {
      const { member } = await api.get(this.orgPath(`/members/${id}`));
      this.names.set(id, member.user.name);
      return member.user.name;
    } catch {
      return 'A former member';
    }
  },
};
