/** Tailwind v4 reads this file because static/src/app.css says `@config`. */
module.exports = {
  content: [
    "./templates/**/*.html",
    "./apps/**/templates/**/*.html",
    "./apps/**/*.py",
    "./static/src/**/*.js",
  ],
  theme: {
    extend: {},
  },
};
