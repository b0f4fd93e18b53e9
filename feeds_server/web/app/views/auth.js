// Sign in and sign up. Signing in with an org's slug opens that org directly (F-ORG-4).

import { api, auth } from '../api.js';
import { errorBox, field, h, toast } from '../dom.js';
import { session } from '../session.js';

function brand() {
  return h('div', { class: 'auth-brand' }, h('span', { class: 'brand' }, 'Feeds'),
    h('p', { class: 'muted' }, 'Your CRM’s conversations, mentions and record changes, live.'));
}

export function renderSignIn(main, { orgSlug, next, go }) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const slug = h('input', { type: 'text', name: 'org', autocomplete: 'off', value: orgSlug || '', placeholder: 'optional' });
  const error = errorBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'stack', 'aria-labelledby': 'signin-title' },
    field('Email', email),
    field('Password', password),
    field('Org', slug, 'The access URL slug of the org to open, e.g. acme. Leave empty for your default org.'),
    error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    submit.disabled = true;
    try {
      const body = { email: email.value.trim(), password: password.value };
      if (slug.value.trim()) body.org_slug = slug.value.trim().toLowerCase();
      const result = await api.post('/auth/signin', body);
      auth.token = result.token;
      await session.loadMe();
      if (result.org) go(`#/org/${encodeURIComponent(result.org.slug)}/feed`);
      else if (next && next.startsWith('#/') && !next.startsWith('#/signin')) go(next);
      else go('#/');
    } catch (err) {
      error.show(err);
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  main.append(brand(), h('section', { class: 'panel narrow auth' },
    h('h1', { id: 'signin-title' }, 'Sign in to Feeds'),
    form,
    h('p', { class: 'muted' }, 'New here? ', h('a', { href: '#/signup' }, 'Create an account'),
      ' · ', h('a', { href: '#/forgot-password' }, 'Forgot your password?'))));
  email.focus();
}

// The links of account emails: they work signed in or not.

export async function renderVerifyEmail(main, { token }) {
  const status = h('p', { role: 'status' }, 'Confirming your address…');
  main.append(brand(), h('section', { class: 'panel narrow auth' }, h('h1', {}, 'Confirm your email address'), status));
  try {
    const result = await api.post('/auth/verify-email', { token });
    status.textContent = `${result.user.email} is confirmed. Invitations sent to it now show in your orgs.`;
    if (auth.token) await session.loadMe();
  } catch (err) {
    const error = errorBox();
    error.show(err);
    status.replaceWith(error);
  }
  main.querySelector('section').append(h('p', {}, h('a', { href: auth.token ? '#/orgs' : '#/signin' }, 'Go on to Feeds')));
}

export function renderForgotPassword(main) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const error = errorBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Email me a link');
  const form = h('form', { class: 'stack' }, field('Email', email), error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    submit.disabled = true;
    try {
      await api.post('/auth/password-reset', { email: email.value.trim() });
      form.replaceWith(h('p', { role: 'status' },
        'If this address has an account, an email with a link to choose a new password is on its way. The link works for 30 minutes.'));
    } catch (err) {
      error.show(err);
      submit.disabled = false;
    }
  });
  main.append(brand(), h('section', { class: 'panel narrow auth' }, h('h1', {}, 'Reset your password'), form,
    h('p', { class: 'muted' }, h('a', { href: '#/signin' }, 'Back to sign in'))));
  email.focus();
}

export function renderResetPassword(main, { token, go }) {
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const error = errorBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Set the new password');
  const form = h('form', { class: 'stack' }, field('New password', password, 'At least 8 characters. Every session of your account ends.'), error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    submit.disabled = true;
    try {
      await api.post('/auth/password-reset/complete', { token, new_password: password.value });
      auth.token = null;
      toast('Your password is changed. Sign in with it.');
      go('#/signin');
    } catch (err) {
      error.show(err);
      submit.disabled = false;
    }
  });
  main.append(brand(), h('section', { class: 'panel narrow auth' }, h('h1', {}, 'Choose a new password'), form));
  password.focus();
}

export function renderSignUp(main, { go }) {
  const name = h('input', { type: 'text', name: 'name', autocomplete: 'name', required: true, maxlength: 200 });
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'email', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const error = errorBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create account');
  const form = h('form', { class: 'stack' },
    field('Your name', name),
    field('Email', email),
    field('Password', password, 'At least 8 characters.'),
    error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    submit.disabled = true;
    try {
      await api.post('/auth/signup', { name: name.value.trim(), email: email.value.trim(), password: password.value });
      const result = await api.post('/auth/signin', { email: email.value.trim(), password: password.value });
      auth.token = result.token;
      await session.loadMe();
      go('#/orgs');
    } catch (err) {
      error.show(err);
    } finally {
      submit.disabled = false;
    }
  });
  main.append(brand(), h('section', { class: 'panel narrow auth' },
    h('h1', {}, 'Create your account'),
    form,
    h('p', { class: 'muted' }, 'Already have one? ', h('a', { href: '#/signin' }, 'Sign in'))));
  name.focus();
}
